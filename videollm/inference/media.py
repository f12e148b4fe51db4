"""What a server lets a request load, and how it samples frames: one policy for both engines.

`MediaPolicy` holds the limits, the local root and allowed domains, the decoder and the default
frame sampler. `videollm serve` builds one from its flags; the transformers engine uses it in
process, and vLLM's processes (API server, where videos are loaded) read it from the environment
(`VIDEOLLM_MEDIA`, JSON), since vLLM starts them itself. Per-request frame settings (`num_frames`,
`fps`, `max_frames`, `start`, `end`) override the default sampler, within the limits.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from videollm.video.limits import MediaLimits
from videollm.video.sampling import FrameSampler
from videollm.video.types import Video, VideoError

ENV = "VIDEOLLM_MEDIA"
FRAME_KEYS = (
    "num_frames",
    "fps",
    "max_frames",
    "start",
    "end",
    "frames_fps",
)  # frames_fps: of a frame directory

# Server defaults: far tighter than the library's (which suit local files), so one request cannot
# make the server decode hours of 4K video.
SERVER_LIMITS = MediaLimits(
    max_bytes=256 * 1024**2,
    max_duration_s=3600.0,
    max_pixels=3840 * 2160,
    max_frames=256,
    max_decoded_bytes=2 * 1024**3,
)


@dataclass(frozen=True)
class MediaPolicy:
    """Access rules, limits and default sampling for the videos of served requests."""

    limits: MediaLimits = SERVER_LIMITS
    allowed_local_root: str | None = None
    allowed_domains: tuple[str, ...] = ()
    num_frames: int = 8  # default sampler: uniform(num_frames), or fps(fps, max_frames=num_frames)
    fps: float | None = None
    backend: str = "pyav"  # videollm.video.DEFAULT_BACKEND (not imported: this module stays light)
    timeout_s: float = 60.0
    max_videos: int = 1  # per prompt
    short_side: int | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.num_frames < 1:
            raise ValueError(f"--frames must be >= 1, got {self.num_frames}")
        if self.num_frames > self.limits.max_frames:
            raise ValueError(
                f"--frames {self.num_frames} is over the frame limit {self.limits.max_frames}; "
                "lower --frames or raise --max-frames"
            )
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"--fps must be > 0, got {self.fps}")
        if self.max_videos < 1:
            raise ValueError(f"--max-videos must be >= 1, got {self.max_videos}")
        if self.allowed_local_root is not None:
            root = Path(self.allowed_local_root)
            if not root.is_dir():
                raise ValueError(f"--allowed-local-media-path {root} is not a directory")
            object.__setattr__(self, "allowed_local_root", str(root.resolve()))
        object.__setattr__(self, "allowed_domains", tuple(self.allowed_domains))

    # -- transport: vLLM starts its own processes, which read the policy from the environment --

    def to_json(self) -> str:
        d = asdict(self)
        d["limits"] = asdict(self.limits)
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> MediaPolicy:
        d = json.loads(text)
        d["limits"] = MediaLimits(**d["limits"])
        d["allowed_domains"] = tuple(d.get("allowed_domains", ()))
        return cls(**d)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MediaPolicy:
        """The policy `videollm serve` exported, or the defaults (plain vLLM with our plugin)."""
        text = (os.environ if environ is None else environ).get(ENV)
        return cls.from_json(text) if text else cls()

    # -- sampling --

    def default_sampler(self) -> FrameSampler:
        if self.fps is not None:
            return FrameSampler.fps(self.fps, max_frames=self.num_frames)
        return FrameSampler.uniform(self.num_frames)

    def sampler(self, settings: Mapping[str, Any] | None = None) -> FrameSampler:
        """The sampler for one request: the default, overridden by `settings` (FRAME_KEYS)."""
        settings = {k: v for k, v in (settings or {}).items() if v is not None}
        unknown = sorted(set(settings) - set(FRAME_KEYS))
        if unknown:
            raise VideoError(f"unknown frame setting(s) {unknown}; use {', '.join(FRAME_KEYS)}")
        frames_fps = settings.pop("frames_fps", None)
        if frames_fps is not None and (
            isinstance(frames_fps, bool) or not isinstance(frames_fps, int | float) or frames_fps <= 0
        ):
            raise VideoError(f"frames_fps must be a number > 0, got {frames_fps!r}")
        if not settings:
            return self.default_sampler()
        for key in ("num_frames", "max_frames"):
            if key in settings and not (
                isinstance(settings[key], int) and not isinstance(settings[key], bool)
            ):
                raise VideoError(f"{key} must be an integer, got {settings[key]!r}")
        for key in ("fps", "start", "end"):
            if key in settings and not isinstance(settings[key], int | float):
                raise VideoError(f"{key} must be a number, got {settings[key]!r}")
        start, end = settings.get("start"), settings.get("end")
        fps = settings.get("fps", None if "num_frames" in settings else self.fps)
        if fps is not None and fps > 0:
            cap = settings.get("max_frames", settings.get("num_frames", self.num_frames))
            sampler = FrameSampler.fps(float(fps), max_frames=cap, start=start, end=end)
        else:
            sampler = FrameSampler.uniform(settings.get("num_frames", self.num_frames), start=start, end=end)
        if sampler.num_frames is not None and sampler.num_frames > self.limits.max_frames:
            raise VideoError(
                f"{sampler.num_frames} frames requested, over this server's limit of {self.limits.max_frames} "
                "(--max-frames); ask for fewer",
                status=413,
            )
        return sampler

    def load(self, source: Any, settings: Mapping[str, Any] | None = None) -> Video:
        """Decode `source` (path, file:// / data: / http(s) URL, bytes) under this policy."""
        from videollm.video import load_video

        frames_fps = (settings or {}).get("frames_fps")
        return load_video(
            source,
            self.sampler(settings),
            backend=self.backend,
            short_side=self.short_side,
            limits=self.limits,
            allowed_local_root=self.allowed_local_root,
            allowed_domains=self.allowed_domains,
            timeout_s=self.timeout_s,
            **({"frames_fps": float(frames_fps)} if frames_fps else {}),
        )

    def with_frames(self, num_frames: int | None = None, fps: float | None = None) -> MediaPolicy:
        return replace(
            self, num_frames=num_frames or self.num_frames, fps=fps if fps is not None else self.fps
        )


def frame_settings(*sources: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge per-request frame settings from several request fields (later ones win), FRAME_KEYS only."""
    out: dict[str, Any] = {}
    for src in sources:
        if src:
            out.update({k: v for k, v in src.items() if k in FRAME_KEYS})
    return out


def domains(values: Sequence[str] | None) -> tuple[str, ...]:
    """--allowed-media-domains values, also accepting comma-separated lists."""
    out: list[str] = []
    for v in values or ():
        out += [d.strip().lower() for d in v.split(",") if d.strip()]
    return tuple(out)
