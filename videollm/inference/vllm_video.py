"""videollm's frame sampler as a vLLM video loader backend (`VLLM_VIDEO_LOADER_BACKEND=videollm`).

vLLM decodes `video_url` parts in its API server with the loader its registry names
(`vllm.multimodal.video.VIDEO_LOADER_REGISTRY`); its own loaders resample to 32 frames with their
own index math. Registered under `videollm`, this one decodes with `videollm.video.load_video` and
the server's `MediaPolicy` instead, so a served model sees exactly the frames training and
evaluation gave it. Per-request frame settings arrive as vLLM passes them: `num_frames` (always;
vLLM's default is 32 unless `--media-io-kwargs` sets it) and the other `media_io_kwargs.video`
keys (`fps`, `max_frames`, `start`, `end`).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import numpy as np
from vllm.exceptions import GracefulHTTPError
from vllm.multimodal.video import VideoLoader

from videollm.inference.media import FRAME_KEYS, MediaPolicy
from videollm.inference.vllm_plugin import BACKEND
from videollm.video.types import Video, VideoError


def video_metadata(video: Video) -> dict[str, Any]:
    """The metadata dict vLLM's loaders return (HF `VideoMetadata` fields), frames already sampled."""
    return {
        "total_num_frames": video.num_source_frames,
        "fps": video.fps,
        "duration": video.duration,
        "video_backend": f"{BACKEND}-{video.backend}",
        "frames_indices": [int(i) for i in video.indices],
        "do_sample_frames": False,
    }


def video_from_metadata(frames: np.ndarray, metadata: dict[str, Any] | None) -> Video | np.ndarray:
    """Rebuild a `Video` (timestamps, duration) from frames + the metadata above; frames alone otherwise."""
    if not metadata or metadata.get("frames_indices") is None or not metadata.get("fps"):
        return frames
    indices = np.asarray(metadata["frames_indices"], dtype=np.int64)
    if len(indices) != len(frames):
        return frames
    fps = float(metadata["fps"])
    return Video(
        frames=np.ascontiguousarray(frames, dtype=np.uint8),
        timestamps=indices / fps,
        indices=indices,
        fps=fps,
        duration=float(metadata.get("duration") or 0.0),
        num_source_frames=int(metadata.get("total_num_frames") or len(frames)),
        backend=str(metadata.get("video_backend", "")),
    )


class VideoLLMVideoLoader(VideoLoader):
    """Decodes with videollm's decoder and sampler under the server's `MediaPolicy` (from `VIDEOLLM_MEDIA`)."""

    @classmethod
    def load_bytes(
        cls, data: bytes, num_frames: int = -1, **kwargs: Any
    ) -> tuple[np.ndarray, dict[str, Any]]:
        unknown = sorted(set(kwargs) - set(FRAME_KEYS))
        settings = {k: kwargs[k] for k in FRAME_KEYS if k in kwargs and kwargs[k] not in (None, -1)}
        if num_frames and num_frames > 0:
            settings.setdefault("num_frames", num_frames)
        try:
            if unknown:
                raise VideoError(
                    f"media_io_kwargs.video has unknown key(s) {unknown}; the videollm loader takes "
                    f"{', '.join(FRAME_KEYS)}"
                )
            video = MediaPolicy.from_env().load(bytes(data), settings)
        except VideoError as e:
            # vLLM maps GracefulHTTPError to its status (413 over a limit, 415 not a video); a bare
            # ValueError would always be a 400.
            raise GracefulHTTPError(str(e), HTTPStatus(e.status)) from e
        return video.frames, video_metadata(video)
