"""Size limits on media, checked before the expensive step they guard (download, decode, stacking).

A server passes stricter limits than the defaults; every violation is a `VideoError` with status 413
that names the limit (the `MediaLimits` field) so the caller knows which knob to turn.
"""

from __future__ import annotations

from dataclasses import dataclass

from videollm.video.types import VideoError

_GIB = 1024**3


@dataclass(frozen=True)
class MediaLimits:
    """Upper bounds for one video. Defaults suit local use; servers should tighten them."""

    max_bytes: int = 2 * _GIB  # encoded input: file size, data: URL payload, HTTP body
    max_duration_s: float = 4 * 3600.0
    max_pixels: int = 4096 * 4096  # width × height of a source frame
    max_frames: int = 2048  # frames returned by one load
    max_decoded_bytes: int = 8 * _GIB  # T × H × W × 3 of the returned (resized) frames

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_duration_s", "max_pixels", "max_frames", "max_decoded_bytes"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"MediaLimits.{name} must be > 0, got {value!r}")

    def check_bytes(self, num_bytes: int, source: str) -> None:
        if num_bytes > self.max_bytes:
            raise VideoError(
                f"{num_bytes} bytes is over the limit of {self.max_bytes} (MediaLimits.max_bytes)",
                source=source,
                status=413,
            )

    def check_stream(self, *, width: int, height: int, duration: float, source: str) -> None:
        if width * height > self.max_pixels:
            raise VideoError(
                f"{width}×{height} frames ({width * height} pixels) are over the limit of "
                f"{self.max_pixels} pixels (MediaLimits.max_pixels)",
                source=source,
                status=413,
            )
        if duration > self.max_duration_s:
            raise VideoError(
                f"duration {duration:.1f} s is over the limit of {self.max_duration_s:g} s "
                "(MediaLimits.max_duration_s)",
                source=source,
                status=413,
            )

    def check_output(self, *, num_frames: int, height: int, width: int, source: str) -> None:
        if num_frames > self.max_frames:
            raise VideoError(
                f"{num_frames} frames requested, over the limit of {self.max_frames} "
                "(MediaLimits.max_frames); sample fewer, e.g. FrameSampler.uniform(32)",
                source=source,
                status=413,
            )
        decoded = num_frames * height * width * 3
        if decoded > self.max_decoded_bytes:
            raise VideoError(
                f"{num_frames} frames of {width}×{height} need {decoded} bytes, over the limit of "
                f"{self.max_decoded_bytes} (MediaLimits.max_decoded_bytes); sample fewer frames or "
                "pass short_side",
                source=source,
                status=413,
            )
