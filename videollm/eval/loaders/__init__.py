"""Official-format loaders: each benchmark's files, read exactly as the benchmark releases them.

`load_items(spec, data_root)` finds the task's data folder and annotation file under `data_root`
(the candidates are in the task YAML), calls the loader named by `spec.format`, and returns
`EvalItem`s. Videos are looked up by each benchmark's naming scheme; one that cannot be found is
kept as an item with `video_error` set (reported and counted later, never silently dropped).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from videollm.eval.items import EvalItem
from videollm.eval.tasks import TaskError, TaskSpec

Loader = Callable[[TaskSpec, Path, Path], list[EvalItem]]
LOADERS: dict[str, Loader] = {}


def loader(name: str) -> Callable[[Loader], Loader]:
    def register(fn: Loader) -> Loader:
        LOADERS[name] = fn
        return fn

    return register


def find_data_dir(spec: TaskSpec, data_root: Path) -> Path:
    """The first of the spec's `data_dirs` under `data_root` that holds one of its annotation files."""
    data_root = Path(data_root)
    if not data_root.is_dir():
        raise TaskError(f"{spec.task}: --data-root {data_root} is not a folder")
    tried = []
    for sub in spec.data_dirs:
        candidate = (data_root / sub).resolve()
        tried.append(str(candidate))
        if candidate.is_dir() and any((candidate / a).exists() for a in spec.annotations):
            return candidate
    raise TaskError(
        f"{spec.task}: none of {list(spec.annotations)} found in {tried}; point --data-root at the "
        f"folder holding the benchmark as released (see {spec.path})"
    )


def find_annotation(spec: TaskSpec, data_dir: Path) -> Path:
    for name in spec.annotations:
        if (data_dir / name).exists():
            return data_dir / name
    raise TaskError(f"{spec.task}: no annotation file {list(spec.annotations)} in {data_dir}")


def load_items(
    spec: TaskSpec, data_root: str | Path | None = None, annotations: str | Path | None = None
) -> list[EvalItem]:
    """All items of a task. `annotations` (a file) overrides the lookup under `data_root`."""
    if spec.format not in LOADERS:
        raise TaskError(f"{spec.path}: format {spec.format!r} has no loader; known: {sorted(LOADERS)}")
    if annotations is not None:
        ann = Path(annotations)
        if not ann.exists():
            raise TaskError(f"{spec.task}: annotation file {ann} does not exist")
        data_dir = Path(data_root) if data_root is not None else ann.parent
    else:
        if data_root is None:
            raise TaskError(f"{spec.task}: no --data-root given (the folder holding the benchmark)")
        data_dir = find_data_dir(spec, Path(data_root))
        ann = find_annotation(spec, data_dir)
    items = LOADERS[spec.format](spec, data_dir, ann)
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise TaskError(f"{spec.task}: {ann}: item id {item.id!r} appears twice")
        seen.add(item.id)
    return items


class VideoFinder:
    """Looks a video up by name in the task's video folders, trying each benchmark extension.

    Folder listings are read once, so resolving thousands of names costs one `listdir` per folder.
    """

    def __init__(self, spec: TaskSpec, data_dir: Path, folders: tuple[str, ...] | None = None):
        self.spec = spec
        self.dirs = [(data_dir / f).resolve() for f in (folders or spec.videos)]
        self._listing: dict[Path, set[str]] = {}

    def _names(self, folder: Path) -> set[str]:
        if folder not in self._listing:
            try:
                self._listing[folder] = set(os.listdir(folder))
            except OSError:
                self._listing[folder] = set()
        return self._listing[folder]

    def find(self, name: str, prefixes: tuple[str, ...] = ("",)) -> tuple[Path | None, str | None]:
        """(path, None) when found, else (None, an error naming every place looked at)."""
        name = str(name)
        candidates = []
        for prefix in prefixes:
            stem = prefix + name
            if Path(stem).suffix.lower() in {e.lower() for e in self.spec.video_extensions} or "/" in stem:
                candidates.append(stem)
            candidates += [stem + ext for ext in self.spec.video_extensions]
            candidates.append(stem)  # a directory of frames, or a name given with its extension
        for folder in self.dirs:
            for cand in candidates:
                head = cand.split("/", 1)[0]
                if head in self._names(folder) and (folder / cand).exists():
                    return folder / cand, None
        exts = "{" + ",".join(self.spec.video_extensions) + "}"
        looked = ", ".join(f"{d}/{prefixes[0]}{name}{exts}" for d in self.dirs)
        return None, f"video {name!r} not found (looked for {looked})"


def read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise TaskError(
            f"{path}: not valid JSON ({e}); is this the file as the benchmark releases it?"
        ) from e


def read_json_or_jsonl(path: Path) -> list:
    if path.suffix == ".jsonl":
        rows = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise TaskError(f"{path}:{n}: not valid JSON ({e})") from e
        return rows
    return read_json(path)


def require(record: dict, keys: tuple[str, ...], where: str) -> None:
    missing = [k for k in keys if k not in record]
    if missing:
        raise TaskError(f"{where}: missing field(s) {missing}; found {sorted(record)}")


def apply_prompt(spec: TaskSpec, **fields) -> str:
    """The spec's `pre_prompt + prompt.format(**fields) + post_prompt`."""
    try:
        body = spec.prompt.format(**fields)
    except KeyError as e:
        raise TaskError(f"{spec.path}: prompt uses {e} but the loader gives {sorted(fields)}") from e
    return f"{spec.pre_prompt}{body}{spec.post_prompt}"


# Register the loaders (each module adds itself to LOADERS on import).
from videollm.eval.loaders import captions, multiple_choice, open_ended, synthetic  # noqa: E402, F401
