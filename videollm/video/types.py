"""The two names every other part of videollm shares with video I/O: `Video` and `VideoError`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class VideoError(ValueError):
    """A video that cannot be read as asked. The message names the source and the fix.

    A subclass of ValueError so callers that validate input generically (servers mapping to 4xx,
    dataset validation) catch it without importing this module.
    """

    def __init__(self, message: str, *, source: str | None = None, status: int = 400):
        self.source = source
        # HTTP status a server should answer with (400 bad input, 413 over a limit, 415 not a video).
        self.status = status
        super().__init__(f"{source}: {message}" if source else message)


@dataclass(frozen=True)
class Video:
    """Decoded frames plus where in time they came from.

    `frames` is uint8 T×H×W×3 RGB; `timestamps` are seconds from the start of the source for each
    frame; `indices` are the frame indices in the source stream that were decoded.
    """

    frames: np.ndarray
    timestamps: np.ndarray
    indices: np.ndarray
    fps: float
    duration: float
    num_source_frames: int
    backend: str = "unknown"
    backend_version: str = ""
    source: str = ""
    # Largest |actual - requested| timestamp in seconds (non-zero only for `keyframe` sampling).
    max_timestamp_error: float = 0.0
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        f = self.frames
        if f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8:
            raise VideoError(
                f"frames must be uint8 T×H×W×3, got {f.dtype} {tuple(f.shape)}", source=self.source
            )
        if not (len(self.timestamps) == len(self.indices) == f.shape[0]):
            raise VideoError(
                f"{f.shape[0]} frames but {len(self.timestamps)} timestamps and {len(self.indices)} indices",
                source=self.source,
            )

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the decoded frames."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])
