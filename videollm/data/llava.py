"""LLaVA conversation datasets: several JSON/JSONL files, images and videos mixed, decoded lazily.

The format is the one every anchor trains on (DESIGN.md "Data"):
`{"id", "video" | "image", "conversations": [{"from": "human", "value": "<video>\\n..."},
{"from": "gpt", "value": "..."}]}`, media paths relative to a media root. `image`/`video` may also be
lists (multi-image / multi-video samples); a record with neither is text-only.

Loading validates every record up front and reports *all* problems at once, each pointing at the
file and the record (index and id), because a 100k-sample mixture that fails one record at a time,
hours into a run, is the common way LLaVA training data goes wrong. Nothing is decoded then:
`LlavaDataset[i]` decodes its media when asked, i.e. in the DataLoader workers.

Mixing follows LLaVA-OneVision's data YAML (`sampling_strategy: all | random:N%`): a file's
`weight` is how many times each of its records appears per epoch — 2 repeats every record twice,
0.25 keeps a fixed, seeded random quarter — fixed when the dataset is built, so every rank and every
resumed run sees the same index → record map.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from videollm.data.frame_cache import FrameCache
    from videollm.video.sampling import FrameSampler
    from videollm.video.types import Video

Modality = Literal["video", "image", "text"]
MEDIA_KEYS: tuple[Modality, ...] = ("video", "image")
PLACEHOLDERS = {"video": "<video>", "image": "<image>"}
_PLACEHOLDER = re.compile(r"(<video>|<image>)")
# LLaVA speaker names (and the chat-template roles they become); OpenAI-style names are accepted too.
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
MAX_LISTED = 50  # problems spelled out in a DataError; the rest are counted


class DataError(ValueError):
    """Training data that cannot be used as given: every problem found, each naming file and record."""

    def __init__(self, problems: Sequence[str], summary: str = ""):
        self.problems = list(problems)
        listed = "\n  ".join(self.problems[:MAX_LISTED])
        more = len(self.problems) - MAX_LISTED
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(
            f"{summary or f'{len(self.problems)} problem(s) in the training data'}:\n  {listed}{tail}"
        )


@dataclass(frozen=True)
class DataSource:
    """One data file of a mixture. `media_root` defaults to the file's folder."""

    path: str
    media_root: str | None = None
    weight: float = 1.0

    @property
    def root(self) -> Path:
        return Path(self.media_root) if self.media_root else Path(self.path).parent


@dataclass(frozen=True)
class Record:
    """A validated sample, still undecoded: chat messages with media parts and absolute media paths."""

    id: str
    where: str  # "file: record N (id X)", for messages that must point back at the data
    modality: Modality
    messages: tuple[dict, ...]
    videos: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    num_words: int = 0  # text length proxy for length-grouped batching (LLaVA uses word counts)


@dataclass
class Sample:
    """One decoded sample: what the collator turns into model inputs."""

    id: str
    where: str
    modality: Modality
    messages: list[dict]
    videos: list[Video] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)


# ----- reading and validating ---------------------------------------------------------------------


def read_json_records(path: str | os.PathLike) -> list[Any]:
    """The raw records of a JSON list or JSONL file; malformed JSON names the line."""
    p = Path(path)
    if not p.is_file():
        raise DataError([f"{p}: file not found"], summary="training data file missing")
    text = p.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError([f"{p}: line {e.lineno} column {e.colno}: invalid JSON ({e.msg})"]) from None
        return records
    records, problems = [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            problems.append(f"{p}: line {lineno}: invalid JSON ({e.msg}); each JSONL line must be one record")
    if problems:
        raise DataError(problems, summary=f"{len(problems)} malformed line(s) in {p}")
    return records


def _media_list(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _content_parts(text: str) -> list[dict]:
    """Split a LLaVA turn at its placeholders into chat-template content parts.

    The newline LLaVA writes after a placeholder (`<video>\\n...`) belongs to the placeholder; chat
    templates emit their own separator after media parts, so it is dropped here.
    """
    parts: list[dict] = []
    pieces = _PLACEHOLDER.split(text)
    for k, piece in enumerate(pieces):
        if piece in PLACEHOLDERS.values():
            parts.append({"type": piece[1:-1]})
            continue
        if k > 0:
            piece = piece.removeprefix("\n")
        if k + 1 < len(pieces):
            piece = piece.removesuffix("\n")
        if piece:
            parts.append({"type": "text", "text": piece})
    return parts


def check_record(raw: Any, *, file: str, index: int, root: Path) -> tuple[Record | None, list[str]]:
    """Validate one raw record: the Record, or None and every problem found (each names the fix)."""
    rid = raw.get("id") if isinstance(raw, dict) else None
    where = f"{file}: record {index}" + (f" (id {rid!r})" if rid is not None else "")
    if not isinstance(raw, dict):
        return None, [f"{where}: is a {type(raw).__name__}, expected an object with 'conversations'"]
    problems: list[str] = []
    media: dict[str, list[str]] = {}
    for key in MEDIA_KEYS:
        if key not in raw:
            continue
        paths = _media_list(raw[key])
        if paths is None or not paths:
            problems.append(f"{where}: '{key}' must be a path or a non-empty list of paths, got {raw[key]!r}")
            continue
        resolved = []
        for rel in paths:
            path = rel if os.path.isabs(rel) else str(root / rel)
            if not os.path.exists(path):
                problems.append(
                    f"{where}: {key} {rel!r} not found at {path}; fix the path or the file's media_root"
                )
            resolved.append(path)
        media[key] = resolved

    turns = raw.get("conversations")
    if not isinstance(turns, list) or not turns:
        problems.append(f"{where}: 'conversations' must be a non-empty list of {{'from', 'value'}} turns")
        return None, problems

    messages: list[dict] = []
    counts = {key: 0 for key in MEDIA_KEYS}
    num_words = 0
    for t, turn in enumerate(turns):
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str) or "from" not in turn:
            problems.append(
                f"{where}: turn {t} must be {{'from': 'human'|'gpt', 'value': str}}, got {turn!r}"
            )
            continue
        role = ROLES.get(str(turn["from"]).lower())
        if role is None:
            problems.append(
                f"{where}: turn {t} has unknown role 'from': {turn['from']!r}; use 'human' or 'gpt' "
                "(or 'user', 'assistant', 'system')"
            )
            continue
        value = turn["value"]
        found = _PLACEHOLDER.findall(value)
        if role == "assistant":
            if not value.strip():
                problems.append(
                    f"{where}: turn {t} is an empty assistant ('gpt') turn; give it the answer text"
                )
            if found:
                problems.append(
                    f"{where}: turn {t} (assistant) contains {found[0]}; placeholders go in human turns only"
                )
        for ph in found:
            counts[ph[1:-1]] += 1
        num_words += len(value.split())
        messages.append({"role": role, "content": _content_parts(value)})
    if messages and not any(m["role"] == "assistant" for m in messages):
        problems.append(f"{where}: no assistant ('gpt') turn, so nothing would be learned from it")

    for key in MEDIA_KEYS:
        n_media, n_ph = len(media.get(key, [])), counts[key]
        if key in raw and n_media and n_ph == 0:
            problems.append(
                f"{where}: has '{key}' but no {PLACEHOLDERS[key]} placeholder; put {PLACEHOLDERS[key]!r} in "
                "the first human turn (e.g. '<video>\\nWhat happens?')"
            )
        elif n_media != n_ph and (key in raw or n_ph):
            problems.append(
                f"{where}: {n_ph} {PLACEHOLDERS[key]} placeholder(s) but {n_media} {key}(s) given; "
                f"they must match one to one"
            )
    if problems:
        return None, problems
    modality: Modality = "video" if media.get("video") else "image" if media.get("image") else "text"
    record = Record(
        id=str(rid) if rid is not None else f"{Path(file).name}#{index}",
        where=where,
        modality=modality,
        messages=tuple(messages),
        videos=tuple(media.get("video", ())),
        images=tuple(media.get("image", ())),
        num_words=num_words,
    )
    return record, []


def load_records(sources: Sequence[DataSource]) -> list[list[Record]]:
    """Validate every record of every source; raise one DataError listing all problems."""
    if not sources:
        raise DataError(["no data files given; list at least one under data.files"])
    problems: list[str] = []
    per_source: list[list[Record]] = []
    bad_records = 0
    for s, source in enumerate(sources):
        if not (
            isinstance(source.weight, int | float) and math.isfinite(source.weight) and source.weight > 0
        ):
            problems.append(
                f"data file {s} ({source.path}): weight must be a number > 0, got {source.weight!r}"
            )
        if source.media_root and not Path(source.media_root).is_dir():
            problems.append(f"data file {s} ({source.path}): media_root {source.media_root} is not a folder")
        try:
            raws = read_json_records(source.path)
        except DataError as e:
            problems += e.problems
            per_source.append([])
            continue
        if not isinstance(raws, list):
            problems.append(
                f"{source.path}: top level is a {type(raws).__name__}, expected a list of records"
            )
            per_source.append([])
            continue
        records = []
        for i, raw in enumerate(raws):
            record, found = check_record(raw, file=source.path, index=i, root=source.root)
            if found:
                bad_records += 1
                problems += found
            else:
                records.append(record)
        if not raws:
            problems.append(f"{source.path}: has no records")
        per_source.append(records)
    if problems:
        files = len(sources)
        raise DataError(
            problems,
            summary=f"{len(problems)} problem(s) in {bad_records} record(s) of {files} data file(s)",
        )
    return per_source


def mixture(sizes: Sequence[int], weights: Sequence[float], seed: int = 0) -> list[tuple[int, int]]:
    """(source, record) pairs of one epoch: each source's records `weight` times (seeded subset for fractions)."""
    rng = np.random.default_rng(seed)
    pairs: list[tuple[int, int]] = []
    for s, (n, w) in enumerate(zip(sizes, weights, strict=True)):
        whole, frac = divmod(float(w), 1.0)
        for _ in range(int(whole)):
            pairs += [(s, i) for i in range(n)]
        extra = round(frac * n)
        if extra:
            pairs += [(s, int(i)) for i in np.sort(rng.choice(n, size=extra, replace=False))]
    return pairs


# ----- the dataset --------------------------------------------------------------------------------


def load_image(path: str) -> np.ndarray:
    """An image file as uint8 H×W×3 RGB."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


class LlavaDataset:
    """A validated LLaVA mixture; `dataset[i]` decodes sample i (a `Sample`).

    Videos are decoded with `videollm.video.load_video` and `sampler`; with `frame_cache` set, the
    decoded frames of each (video, sampler) pair are kept on disk and read back on later epochs.
    """

    def __init__(
        self,
        sources: Sequence[DataSource],
        sampler: FrameSampler,
        *,
        frame_cache: FrameCache | None = None,
        seed: int = 0,
        images_as_video: bool = False,
    ):
        self.sources = list(sources)
        self.sampler = sampler
        self.frame_cache = frame_cache
        self.images_as_video = images_as_video
        self.per_source = load_records(self.sources)
        self.index = mixture([len(r) for r in self.per_source], [s.weight for s in self.sources], seed)

    def __len__(self) -> int:
        return len(self.index)

    def record(self, i: int) -> Record:
        s, r = self.index[i]
        return self.per_source[s][r]

    @property
    def modalities(self) -> list[Modality]:
        return [self.record(i).modality for i in range(len(self))]

    @property
    def lengths(self) -> list[int]:
        return [self.record(i).num_words for i in range(len(self))]

    def load_video(self, path: str) -> Video:
        if self.frame_cache is not None:
            return self.frame_cache.get_or_decode(path, self.sampler)
        from videollm.video import load_video

        return load_video(path, sampler=self.sampler)

    def __getitem__(self, i: int) -> Sample:
        record = self.record(i)
        try:
            videos = [self.load_video(p) for p in record.videos]
            images = [load_image(p) for p in record.images]
        except (OSError, ValueError) as e:  # VideoError is a ValueError; PIL raises OSError
            raise DataError([f"{record.where}: cannot decode its media: {e}"]) from e
        messages = [{"role": m["role"], "content": [dict(p) for p in m["content"]]} for m in record.messages]
        if self.images_as_video and images:
            messages, videos = images_to_videos(messages, videos, images, record.where)
            images = []
        return Sample(
            id=record.id,
            where=record.where,
            modality=record.modality,
            messages=messages,
            videos=videos,
            images=images,
        )


def images_to_videos(
    messages: list[dict], videos: list[Video], images: list[np.ndarray], where: str
) -> tuple[list[dict], list[Video]]:
    """Every image as a one-frame video, in its place among the sample's videos.

    An image-LLM that will be carried to video and *evaluated through its video path* (the study's
    single-frame baseline, every cell) must learn through that path too: the video preprocessing, the
    connector's token layout and newline, not the image processor's tiles and row newlines.
    """
    from videollm.video.types import Video

    stills, clips, ordered = iter(images), iter(videos), []
    for message in messages:
        for part in message["content"]:
            if part.get("type") == "video":
                ordered.append(next(clips))
            elif part.get("type") == "image":
                frame = next(stills)
                part["type"] = "video"
                ordered.append(
                    Video(
                        frames=frame[None],
                        timestamps=np.zeros(1),
                        indices=np.zeros(1, np.int64),
                        fps=1.0,
                        duration=0.0,
                        num_source_frames=1,
                        source=f"{where} (image)",
                    )
                )
    return messages, ordered


__all__ = [
    "DataError",
    "DataSource",
    "LlavaDataset",
    "Record",
    "Sample",
    "check_record",
    "load_records",
    "mixture",
    "read_json_records",
]
