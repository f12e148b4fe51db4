"""Which frames to decode: the sampling math, kept pure so it is testable without any video.

Conventions follow the code the video-LLM ecosystem evaluates with, so a model sees the frames it
was trained and benchmarked on:

- `uniform(n)`: lmms-eval / LLaVA-OneVision `np.linspace(first, last, n, dtype=int)` over the first
  and last frame of the segment (truncation, not rounding, as there), with `n` capped at the number
  of frames in the segment (lmms-eval's PyAV reader does the same) so no frame is returned twice.
- `fps(f, max_frames)`: LLaVA-Video's `load_video`: every `round(source_fps / f)`-th frame from the
  segment's first frame, falling back to `uniform(max_frames)` when that gives more than
  `max_frames`. Asking for more than the source fps gives every frame, never duplicates.
- `start`/`end` (seconds, MVBench-style segments) select the frames whose timestamp `i / fps` lies in
  `[start, end]`; a segment shorter than one frame interval yields the frame nearest its middle.

Indices assume a constant frame rate (frame `i` at `i / fps` seconds), as all of the above do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from videollm.video.types import VideoError

Mode = Literal["exact", "keyframe"]
_MODES = ("exact", "keyframe")
_EPS = 1e-6  # tolerance for times that land exactly on a frame boundary


@dataclass(frozen=True)
class FrameSampler:
    """A recipe for frame indices. Build it with `uniform` or `fps`; apply it with `indices`.

    `mode="keyframe"` asks the decoder to snap each index to the nearest keyframe (one GOP head per
    sample: much faster, timestamps off by up to half a GOP, reported in `Video.max_timestamp_error`).
    """

    kind: Literal["uniform", "fps"]
    num_frames: int | None = None  # uniform: n; fps: max_frames (None = no cap)
    rate: float | None = None  # fps: target frames per second
    start: float | None = None
    end: float | None = None
    mode: Mode = "exact"

    def __post_init__(self) -> None:
        if self.kind not in ("uniform", "fps"):
            raise VideoError(f"unknown sampler kind {self.kind!r}; use FrameSampler.uniform or .fps")
        if self.kind == "uniform" and self.num_frames is None:
            raise VideoError("FrameSampler.uniform needs a number of frames n ≥ 1")
        if self.num_frames is not None and (
            isinstance(self.num_frames, bool)
            or int(self.num_frames) != self.num_frames
            or self.num_frames < 1
        ):
            raise VideoError(f"number of frames must be an integer ≥ 1, got {self.num_frames!r}")
        if self.kind == "fps" and not (self.rate is not None and math.isfinite(self.rate) and self.rate > 0):
            raise VideoError(f"FrameSampler.fps needs a frame rate > 0, got {self.rate!r}")
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise VideoError(f"{name} must be a time in seconds ≥ 0, got {value!r}")
        if self.start is not None and self.end is not None and self.end < self.start:
            raise VideoError(f"end ({self.end} s) is before start ({self.start} s)")
        if self.mode not in _MODES:
            raise VideoError(f"mode must be one of {_MODES}, got {self.mode!r}")

    @classmethod
    def uniform(
        cls, n: int, start: float | None = None, end: float | None = None, mode: Mode = "exact"
    ) -> FrameSampler:
        """`n` frames spread evenly from the first to the last frame of [start, end]."""
        return cls("uniform", num_frames=n, start=start, end=end, mode=mode)

    @classmethod
    def fps(
        cls,
        f: float,
        max_frames: int | None = None,
        start: float | None = None,
        end: float | None = None,
        mode: Mode = "exact",
    ) -> FrameSampler:
        """About `f` frames per second of [start, end]; at most `max_frames` (then uniform)."""
        return cls("fps", num_frames=max_frames, rate=f, start=start, end=end, mode=mode)

    def indices(self, num_source_frames: int, fps: float) -> np.ndarray:
        """Sorted, distinct frame indices (int64) into a stream of `num_source_frames` at `fps`."""
        if num_source_frames < 1:
            raise VideoError("the video has no frames to sample")
        if not (math.isfinite(fps) and fps > 0):
            raise VideoError(f"source fps must be > 0, got {fps!r}")
        first, last = segment_bounds(num_source_frames, fps, self.start, self.end)
        if self.kind == "uniform":
            return uniform_indices(first, last, self.num_frames)
        step = max(1, round(fps / self.rate))
        picked = np.arange(first, last + 1, step, dtype=np.int64)
        if self.num_frames is not None and len(picked) > self.num_frames:
            return uniform_indices(first, last, self.num_frames)
        return picked


def segment_bounds(
    num_source_frames: int, fps: float, start: float | None, end: float | None
) -> tuple[int, int]:
    """First and last frame index whose timestamp lies in [start, end] (None = open end)."""
    last_index = num_source_frames - 1
    duration = num_source_frames / fps
    first = 0 if start is None else math.ceil(start * fps - _EPS)
    if first > last_index:
        raise VideoError(f"start={start} s is past the end of the video ({duration:.3f} s)")
    last = last_index if end is None else min(last_index, math.floor(end * fps + _EPS))
    if last < first:  # the segment falls between two frames: take the one nearest its middle
        middle = round((start + min(end, duration)) / 2 * fps)
        first = last = min(max(middle, 0), last_index)
    return first, last


def uniform_indices(first: int, last: int, n: int) -> np.ndarray:
    """lmms-eval's `np.linspace(first, last, n, dtype=int)`, with n capped at the frame count."""
    n = min(n, last - first + 1)
    return np.linspace(first, last, n).astype(np.int64)


def snap_to_keyframes(indices: np.ndarray, keyframes: np.ndarray) -> np.ndarray:
    """Each index replaced by the nearest keyframe index (ties go to the earlier keyframe)."""
    keyframes = np.asarray(keyframes, dtype=np.int64)
    if keyframes.size == 0:
        raise VideoError("the stream has no keyframes to snap to; use mode='exact'")
    indices = np.asarray(indices, dtype=np.int64)
    right = np.clip(np.searchsorted(keyframes, indices, side="left"), 0, len(keyframes) - 1)
    left = np.clip(right - 1, 0, len(keyframes) - 1)
    take_left = np.abs(indices - keyframes[left]) <= np.abs(keyframes[right] - indices)
    return np.where(take_left, keyframes[left], keyframes[right])
