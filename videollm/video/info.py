"""`VideoInfo`: what a source holds, known before decoding any frame (the result of `probe_video`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class VideoInfo:
    """Stream facts that sampling and limits need.

    `keyframes` are frame indices (display order) a decoder can start from; `open_gop` is True when
    some keyframe is followed in decode order by frames shown before it (x264 `open-gop`): those
    streams cannot be entered at arbitrary keyframes by decord (see `decord_backend`).
    """

    source: str
    num_frames: int
    fps: float
    width: int
    height: int
    codec: str
    container: str
    keyframes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    open_gop: bool | None = None  # None: not established yet (checked lazily per keyframe used)

    @property
    def duration(self) -> float:
        """Seconds, at the nominal frame rate (frame i is shown at i / fps)."""
        return self.num_frames / self.fps
