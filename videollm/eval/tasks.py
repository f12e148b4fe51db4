"""The task registry: each benchmark is one YAML file in `eval/tasks/`, suites in `eval/suites/`.

A task spec says which loader reads the benchmark's files, where those files sit under a data
root, how the prompt is built, how answers are generated and scored. The YAML is the user-facing
knob; the code behind each `format:` lives in `videollm.eval.loaders`.

Extra task/suite folders can be added with the `VIDEOLLM_EVAL_TASKS` environment variable
(os.pathsep-separated), and `--tasks` accepts a path to a task YAML directly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from videollm.eval.items import Kind

REPO_EVAL_DIR = Path(__file__).resolve().parents[2] / "eval"
KINDS = ("open_ended", "multiple_choice", "caption")


class TaskError(ValueError):
    """A task name, spec file or data layout that cannot be used; the message says the fix."""


@dataclass(frozen=True)
class TaskSpec:
    """One benchmark, as described by its YAML file (field names are the YAML keys)."""

    task: str
    kind: Kind
    format: str  # loader name in videollm.eval.loaders.LOADERS
    description: str = ""
    source: str = ""  # where the format / prompt / scoring rule is taken from
    data_dirs: tuple[str, ...] = (".",)  # sub-folders of --data-root tried in order
    annotations: tuple[str, ...] = ()  # annotation files tried in order (relative to the data dir)
    videos: tuple[str, ...] = (".",)  # video folders tried in order (relative to the data dir)
    video_extensions: tuple[str, ...] = (".mp4",)
    prompt: str = "{question}"
    post_prompt: str = ""
    pre_prompt: str = ""
    extraction: str = ""  # MC answer-extraction rule (videollm.eval.choices.RULES)
    generation: dict[str, Any] = field(default_factory=dict)
    group_by: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)  # loader-specific settings
    path: str = ""  # the YAML file it came from

    @property
    def max_new_tokens(self) -> int:
        return int(self.generation.get("max_new_tokens", 64))

    @property
    def temperature(self) -> float:
        return float(self.generation.get("temperature", 0.0))


def _as_tuple(value: Any) -> tuple:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return (value,)


def load_spec(path: str | Path) -> TaskSpec:
    """Parse one task YAML, checking every key so a typo is reported, not ignored."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise TaskError(f"{path}: cannot read task spec: {e}") from e
    if not isinstance(raw, dict):
        raise TaskError(f"{path}: a task spec is a YAML mapping with at least task, kind, format")
    known = {f.name for f in fields(TaskSpec)} - {"path"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise TaskError(f"{path}: unknown key(s) {unknown}; allowed: {sorted(known)}")
    for key in ("task", "kind", "format"):
        if not raw.get(key):
            raise TaskError(f"{path}: missing required key {key!r}")
    if raw["kind"] not in KINDS:
        raise TaskError(f"{path}: kind {raw['kind']!r} is not one of {KINDS}")
    for key in ("data_dirs", "annotations", "videos", "video_extensions", "group_by"):
        if key in raw:
            raw[key] = tuple(str(v) for v in _as_tuple(raw[key]))
    for key in ("generation", "options"):
        if key in raw and not isinstance(raw[key], dict):
            raise TaskError(f"{path}: {key} must be a mapping, got {raw[key]!r}")
    return TaskSpec(**raw, path=str(path))


def search_dirs() -> list[Path]:
    """Folders holding `tasks/` and `suites/`: the repo's `eval/` plus $VIDEOLLM_EVAL_TASKS."""
    dirs = [REPO_EVAL_DIR]
    for extra in os.environ.get("VIDEOLLM_EVAL_TASKS", "").split(os.pathsep):
        if extra:
            dirs.append(Path(extra))
    return dirs


def _yaml_files(kind: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for base in search_dirs():
        for candidate in (base / kind, base):
            if candidate.is_dir():
                for p in sorted(candidate.glob("*.yaml")):
                    found.setdefault(p.stem, p)
    return found


def all_specs() -> dict[str, TaskSpec]:
    """Every registered task by name."""
    specs = {}
    for _, path in _yaml_files("tasks").items():
        spec = load_spec(path)
        specs.setdefault(spec.task, spec)
    return specs


def all_suites() -> dict[str, list[str]]:
    suites = {}
    for name, path in _yaml_files("suites").items():
        raw = yaml.safe_load(path.read_text()) or {}
        if not isinstance(raw, dict) or not isinstance(raw.get("tasks"), list):
            raise TaskError(f"{path}: a suite is a mapping with a `tasks:` list")
        suites[raw.get("suite", name)] = [str(t) for t in raw["tasks"]]
    return suites


def resolve_tasks(names: str | list[str]) -> list[TaskSpec]:
    """Task names, suite names or YAML paths (comma-separated or a list) → specs, in order, unique."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    specs = all_specs()
    suites = all_suites()
    out: list[TaskSpec] = []
    for name in names:
        if name.endswith((".yaml", ".yml")) and Path(name).exists():
            chosen = [load_spec(name)]
        elif name in specs:
            chosen = [specs[name]]
        elif name in suites:
            chosen = resolve_tasks(suites[name])
        else:
            raise TaskError(
                f"unknown task {name!r}; known tasks: {', '.join(sorted(specs))}; "
                f"suites: {', '.join(sorted(suites))} (`videollm eval --list` shows them)"
            )
        for spec in chosen:
            if spec.task not in {s.task for s in out}:
                out.append(spec)
    if not out:
        raise TaskError("no task given: use --tasks NAME[,NAME...] (see `videollm eval --list`)")
    return out
