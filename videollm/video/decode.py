"""`load_video` and `probe_video`: source → checked limits → sampled, decoded, resized `Video`.

Both run on a worker thread under one wall-clock budget (`timeout_s`, covering download, indexing
and decoding): the decode loops check it between frames, and the caller stops waiting when it is
spent even if FFmpeg is stuck inside a single call, so no input can hang a server.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Literal, TypeVar

import numpy as np

from videollm.video.info import VideoInfo
from videollm.video.limits import MediaLimits
from videollm.video.sampling import FrameSampler, snap_to_keyframes
from videollm.video.sources import Deadline, Media, Source, open_source
from videollm.video.types import Video, VideoError

Backend = Literal["decord", "pyav"]
BACKENDS = ("decord", "pyav")
# PyAV by default: on H.264 it is the faster of the two decoders here (benchmarks/decode.py: exact mode
# 1.2-1.3× the fastest plain OpenCV loop; decord's own decoder runs at 0.45-0.67× of it) and it is
# correct on open-GOP streams, where decord 0.6 must fall back to reading every frame.
DEFAULT_BACKEND: Backend = "pyav"
DEFAULT_TIMEOUT_S = 300.0

T = TypeVar("T")


def load_video(
    source: Source,
    sampler: FrameSampler | None = None,
    *,
    backend: Backend = DEFAULT_BACKEND,
    short_side: int | None = None,
    limits: MediaLimits | None = None,
    allowed_local_root: str | os.PathLike | None = None,
    allowed_domains: Sequence[str] = (),
    timeout_s: float = DEFAULT_TIMEOUT_S,
    frames_fps: float = 1.0,
) -> Video:
    """Decode the frames `sampler` picks (all frames, within `limits`, when None).

    `backend` decodes video files (GIFs and frame directories always use Pillow); both backends
    return bit-identical pixels for the same indices on 8-bit streams (10-bit ones differ by the
    rounding of their RGB conversions). `short_side` resizes frames after decoding (bicubic,
    aspect kept). `frames_fps` is the frame rate of a frame directory, which has none.
    `Video.timestamps` are nominal (index / fps, as LLaVA-Video reports them); in keyframe mode
    `Video.indices` are the keyframes decoded and `Video.extra["requested_indices"]` the ones asked.
    Errors are `VideoError`s naming the source and the fix (status 400 bad input, 403 not allowed,
    413 over a limit or the time budget, 415 not a video / unsupported codec, 504 remote timeout).
    """
    if backend not in BACKENDS:
        raise VideoError(f"unknown backend {backend!r}; use one of {BACKENDS}")
    if short_side is not None and (
        isinstance(short_side, bool) or int(short_side) != short_side or short_side < 1
    ):
        raise VideoError(f"short_side must be a positive integer, got {short_side!r}")
    limits = limits or MediaLimits()

    def load(deadline: Deadline) -> Video:
        with _opened(source, backend, deadline, limits, allowed_local_root, allowed_domains, frames_fps) as (
            media,
            reader,
        ):
            return _decode(reader, media, sampler, short_side, limits)

    return with_deadline(load, timeout_s, _describe(source))


def probe_video(
    source: Source,
    *,
    limits: MediaLimits | None = None,
    allowed_local_root: str | os.PathLike | None = None,
    allowed_domains: Sequence[str] = (),
    timeout_s: float = DEFAULT_TIMEOUT_S,
    frames_fps: float = 1.0,
) -> VideoInfo:
    """Frame count, fps, size, codec and keyframes of `source`, without decoding frames."""
    limits = limits or MediaLimits()

    def probe(deadline: Deadline) -> VideoInfo:
        with _opened(source, "pyav", deadline, limits, allowed_local_root, allowed_domains, frames_fps) as (
            _,
            reader,
        ):
            return reader.info

    return with_deadline(probe, timeout_s, _describe(source))


@contextmanager
def _opened(source, backend, deadline, limits, allowed_local_root, allowed_domains, frames_fps):
    """The source resolved under its access rules and a reader on it, closed on the way out."""
    media = open_source(
        source,
        limits=limits,
        allowed_local_root=allowed_local_root,
        allowed_domains=allowed_domains,
        deadline=deadline,
    )
    reader = open_reader(media, backend, deadline, frames_fps, allowed_local_root)
    try:
        yield media, reader
    finally:
        reader.close()


def output_size(height: int, width: int, short_side: int | None) -> tuple[int, int]:
    """(height, width) after scaling the shorter side to `short_side`, aspect ratio kept."""
    if short_side is None:
        return height, width
    scale = short_side / min(height, width)
    if height <= width:
        return short_side, max(1, round(width * scale))
    return max(1, round(height * scale)), short_side


def resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of one uint8 H×W×3 frame to (height, width), with Pillow."""
    if frame.shape[:2] == size:
        return frame
    from PIL import Image

    return np.asarray(Image.fromarray(frame).resize((size[1], size[0]), Image.Resampling.BICUBIC))


def _describe(source: Source) -> str:
    if isinstance(source, bytes | bytearray | memoryview):
        return f"<{len(source)} bytes>"
    text = str(source)
    return text if len(text) <= 80 else text[:77] + "..."


def open_reader(media: Media, backend: str, deadline: Deadline, frames_fps: float, root):
    """The reader for an opened source: GIF, frame folder, PyAV, or decord over a PyAV probe.

    Public because the decode tests drive a backend's reader directly (arbitrary index sets).
    """
    from videollm.video import image_backend

    if media.kind == "gif":
        return image_backend.GifReader(media, deadline)
    if media.kind == "frames":
        return image_backend.FrameDirReader(media, deadline, fps=frames_fps, allowed_local_root=root)
    from videollm.video.pyav_backend import PyAVReader

    probe = PyAVReader(media, deadline)
    if backend == "pyav":
        return probe
    from videollm.video.decord_backend import DecordReader

    try:
        return DecordReader(media, probe, deadline)
    except BaseException:
        probe.close()
        raise


def _decode(
    reader, media: Media, sampler: FrameSampler | None, short_side: int | None, limits: MediaLimits
) -> Video:
    info: VideoInfo = reader.info
    limits.check_stream(width=info.width, height=info.height, duration=info.duration, source=media.name)
    if sampler is None:
        requested = np.arange(info.num_frames, dtype=np.int64)
    else:
        try:
            requested = sampler.indices(info.num_frames, info.fps)
        except VideoError as e:
            raise VideoError(str(e), source=media.name, status=e.status) from None
    height, width = output_size(info.height, info.width, short_side)
    limits.check_output(num_frames=len(requested), height=height, width=width, source=media.name)

    keyframe_mode = sampler is not None and sampler.mode == "keyframe"
    decoded = requested
    if keyframe_mode:
        # Confirm the keyframes we snap to (a fast index may have to be completed first).
        reader.keyframes_closed(snap_to_keyframes(requested, info.keyframes))
        info = reader.info
        decoded = snap_to_keyframes(requested, info.keyframes)
    unique = np.unique(decoded)
    frames = np.empty((len(unique), height, width, 3), dtype=np.uint8)
    slot = {int(index): i for i, index in enumerate(unique)}
    filled = 0
    for index, frame in reader.read(unique, keyframes_only=keyframe_mode):
        if frame.shape[:2] != (info.height, info.width):
            raise VideoError(
                f"frame {index} is {frame.shape[1]}×{frame.shape[0]} but the stream is "
                f"{info.width}×{info.height} (mid-stream size change); re-encode the video",
                source=media.name,
            )
        frames[slot[index]] = resize(frame, (height, width))
        filled += 1
    if filled != len(unique):
        raise VideoError(f"only {filled} of {len(unique)} frames could be decoded", source=media.name)
    info = reader.info  # the reader may have completed its index while decoding
    if len(unique) != len(decoded):
        frames = frames[np.searchsorted(unique, decoded)]
    return Video(
        frames=frames,
        timestamps=decoded / info.fps,
        indices=decoded,
        fps=info.fps,
        duration=info.duration,
        num_source_frames=info.num_frames,
        backend=reader.backend,
        backend_version=reader.version,
        source=media.name,
        max_timestamp_error=float(np.abs(decoded - requested).max() / info.fps) if len(decoded) else 0.0,
        extra={"requested_indices": requested, "codec": info.codec, "open_gop": info.open_gop},
    )


def with_deadline(work: Callable[[Deadline], T], timeout_s: float, name: str) -> T:
    """Run `work` on a daemon thread; give up waiting (VideoError) once `timeout_s` is spent.

    Public because the decode tests check it on a call that never returns, which no real file can force.
    """
    if not (isinstance(timeout_s, int | float) and timeout_s > 0):
        raise VideoError(f"timeout_s must be a number of seconds > 0, got {timeout_s!r}")
    deadline = Deadline(float(timeout_s))
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = work(deadline)
        except BaseException as e:  # handed to the caller's thread below
            outcome["error"] = e

    worker = threading.Thread(target=run, name="videollm-video-decode", daemon=True)
    worker.start()
    worker.join(timeout_s + 1.0)  # the loops stop themselves at the deadline; this catches stuck calls
    if worker.is_alive():
        raise VideoError(
            f"decoding did not finish within timeout_s={timeout_s:g} s; the file may be damaged or too "
            "large: sample fewer frames or raise timeout_s",
            source=name,
            status=413,
        )
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
