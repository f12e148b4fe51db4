"""Real media files for tests, each frame carrying its index as a frame counter.

Plain functions (import them; wrap in fixtures where a test module needs caching). Videos are
encoded with libx264 through PyAV, GIFs and frame images with Pillow.
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from videollm.video.counter import draw_counter
from videollm.video.encode import write_video


def counter_frames(num_frames: int, height: int = 96, width: int = 160) -> Iterator[np.ndarray]:
    """Moving colour gradients (so consecutive frames differ) with the frame index drawn in."""
    yy, xx = np.mgrid[0:height, 0:width]
    for i in range(num_frames):
        frame = np.stack(
            [(xx * 2 + i * 3) % 256, (yy * 3 + i) % 256, (xx + yy + i * 5) % 256], axis=-1
        ).astype(np.uint8)
        yield draw_counter(frame, i)


def write_counter_video(
    path: str | Path,
    num_frames: int = 90,
    *,
    height: int = 96,
    width: int = 160,
    fps: float = 30,
    gop: int = 25,
    bframes: int | None = None,
    open_gop: bool = False,
    container_format: str | None = None,
    container_options: dict[str, str] | None = None,
    **options: str,
) -> Path:
    """An H.264 video whose frame i shows counter i; B-frames on (x264 default) unless bframes=0."""
    if open_gop:
        options["x264-params"] = "open-gop=1"
    write_video(
        path,
        counter_frames(num_frames, height, width),
        fps=fps,
        gop=gop,
        crf=18,
        bframes=bframes,
        container_format=container_format,
        options=options,
        container_options=container_options,
    )
    return Path(path)


def write_zero_frame_mp4(path: str | Path) -> Path:
    """An MP4 with an H.264 video track and no frames (a fragmented MP4 cut before its first fragment)."""
    import av

    with av.open(str(path), "w", format="mp4", options={"movflags": "frag_keyframe+empty_moov"}) as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        container.start_encoding()
    return Path(path)


def write_audio_only(path: str | Path, seconds: float = 0.5) -> Path:
    """A WAV file (whatever its name): a real media file with no video stream."""
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(8000)
        f.writeframes(np.zeros(int(8000 * seconds), dtype=np.int16).tobytes())
    return Path(path)


def write_counter_gif(
    path: str | Path, num_frames: int = 12, *, height: int = 64, width: int = 96, delay_ms: int = 50
) -> Path:
    from PIL import Image

    images = [Image.fromarray(f) for f in counter_frames(num_frames, height, width)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=delay_ms, loop=0)
    return Path(path)


def write_frame_dir(
    directory: str | Path,
    num_frames: int = 10,
    *,
    first: int = 1,
    ext: str = ".png",
    skip: tuple[int, ...] = (),
    height: int = 64,
    width: int = 96,
) -> Path:
    """Frames numbered `first`, `first`+1, ... as 00001.png...; numbers in `skip` left out."""
    from PIL import Image

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(counter_frames(num_frames, height, width)):
        if first + i not in skip:
            Image.fromarray(frame).save(directory / f"{first + i:05d}{ext}")
    return directory


def with_unknown_codec(mp4: bytes) -> bytes:
    """The same MP4 with its H.264 sample entry renamed to a fourcc no decoder knows."""
    assert mp4.count(b"avc1") >= 1
    return mp4.replace(b"avc1", b"zzzz")
