"""Media in: sources (path, file://, data:, http opt-in) → decode (decord or PyAV) → frame sampling.

    from videollm.video import FrameSampler, load_video
    video = load_video("clip.mp4", FrameSampler.uniform(32), short_side=384)

Decoders (decord, PyAV, Pillow) are imported on first use, so importing this package is cheap.
"""

from videollm.video.decode import BACKENDS, DEFAULT_BACKEND, load_video, probe_video
from videollm.video.info import VideoInfo
from videollm.video.limits import MediaLimits
from videollm.video.sampling import FrameSampler
from videollm.video.types import Video, VideoError

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "FrameSampler",
    "MediaLimits",
    "Video",
    "VideoError",
    "VideoInfo",
    "load_video",
    "probe_video",
]
