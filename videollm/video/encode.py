"""Write frames to a video file with PyAV (libx264 by default): for the synthetic world, test
fixtures and benchmarks, so that every generated video goes through the same encoder settings."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import BinaryIO

import numpy as np


def write_video(
    target: str | os.PathLike | BinaryIO,
    frames: Iterable[np.ndarray],
    *,
    fps: float = 30,
    codec: str = "libx264",
    gop: int | None = None,
    crf: int | None = None,
    bframes: int | None = None,
    preset: str | None = None,
    pix_fmt: str = "yuv420p",
    container_format: str | None = None,
    options: Mapping[str, str] | None = None,
    container_options: Mapping[str, str] | None = None,
) -> int:
    """Encode uint8 H×W×3 RGB `frames` into `target`; returns the number of frames written.

    `gop` fixes the keyframe interval exactly (scene-cut keyframes off), which seeking code and its
    tests rely on; `options` go to the encoder verbatim (e.g. {"x264-params": "open-gop=1"}),
    `container_options` to the muxer (e.g. {"movflags": "faststart"}). A file-like `target` needs
    `container_format` (e.g. "mp4").
    """
    import av

    rate = Fraction(fps).limit_denominator(1001)
    opts: dict[str, str] = {}
    if crf is not None:
        opts["crf"] = str(crf)
    if gop is not None:
        opts.update(g=str(gop), keyint_min=str(gop), sc_threshold="0")
    if bframes is not None:
        opts["bf"] = str(bframes)
    if preset is not None:
        opts["preset"] = preset
    opts.update(options or {})
    count = 0
    with av.open(target, "w", format=container_format, options=dict(container_options or {})) as container:
        stream = None
        for frame in frames:
            if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
                raise ValueError(f"frames must be uint8 H×W×3, got {frame.dtype} {tuple(frame.shape)}")
            if stream is None:
                stream = container.add_stream(codec, rate=rate, options=opts)
                stream.height, stream.width = frame.shape[:2]
                stream.pix_fmt = pix_fmt
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            container.mux(stream.encode(video_frame))
            count += 1
        if stream is None:
            raise ValueError("no frames to write")
        container.mux(stream.encode(None))
    return count
