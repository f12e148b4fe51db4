"""Every kind of bad input gives a `VideoError` naming the source, the problem and an HTTP status."""

from __future__ import annotations

import base64
import os

import pytest

from tests.media import (
    with_unknown_codec,
    write_audio_only,
    write_counter_video,
    write_frame_dir,
    write_zero_frame_mp4,
)
from videollm.video import FrameSampler, MediaLimits, VideoError, load_video, probe_video

BACKENDS = ("decord", "pyav")


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return write_counter_video(tmp_path_factory.mktemp("good") / "good.mp4", 60, gop=25)


def error_for(source, *args, **kwargs) -> VideoError:
    with pytest.raises(VideoError) as info:
        load_video(source, *args, **kwargs)
    return info.value


def check(error: VideoError, status: int, *phrases: str, source: str | None = None) -> None:
    message = str(error)
    assert error.status == status, message
    for phrase in phrases:
        assert phrase in message, message
    if source is not None:
        assert source in message, message


@pytest.mark.parametrize("backend", BACKENDS)
def test_missing_file(tmp_path, backend):
    path = str(tmp_path / "nope.mp4")
    check(error_for(path, backend=backend), 400, "no such file", source=path)


@pytest.mark.parametrize("backend", BACKENDS)
def test_text_file_named_mp4(tmp_path, backend):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 20)
    check(error_for(path, backend=backend), 415, "not a video", source=str(path))


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    check(error_for(path), 400, "empty file", source=str(path))
    check(error_for(b""), 400, "empty")


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_frames(tmp_path, backend):
    path = write_zero_frame_mp4(tmp_path / "zero.mp4")
    check(error_for(path, backend=backend), 400, "zero frames", source=str(path))


@pytest.mark.parametrize("backend", BACKENDS)
def test_truncated_mp4_without_moov(good, tmp_path, backend):
    data = good.read_bytes()
    assert data.index(b"moov") > len(data) // 2  # libx264 via PyAV writes the index at the end
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])
    check(error_for(path, backend=backend), 400, "truncated", "moov atom", source=str(path))


@pytest.mark.parametrize("backend", BACKENDS)
def test_truncated_mp4_with_index_first(tmp_path, backend):
    full = write_counter_video(tmp_path / "fast.mp4", 60, gop=25, container_options={"movflags": "faststart"})
    data = full.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
    path = tmp_path / "fast_cut.mp4"
    path.write_bytes(data[: len(data) * 2 // 3])
    error = error_for(path, FrameSampler.uniform(8), backend=backend)
    assert error.status == 400 and str(path) in str(error)
    assert "decode" in str(error) or "truncated" in str(error) or "corrupt" in str(error)


@pytest.mark.parametrize("backend", BACKENDS)
def test_unsupported_codec(good, tmp_path, backend):
    path = tmp_path / "odd.mp4"
    path.write_bytes(with_unknown_codec(good.read_bytes()))
    check(
        error_for(path, backend=backend),
        415,
        "unsupported video codec",
        "'zzzz'",
        "libx264",
        source=str(path),
    )


def test_audio_only_file(tmp_path):
    path = write_audio_only(tmp_path / "sound.mp4")
    check(error_for(path), 415, "no video stream", source=str(path))


@pytest.mark.parametrize(
    ("limits", "sampler", "phrase"),
    [
        (MediaLimits(max_bytes=1000), None, "MediaLimits.max_bytes"),
        (MediaLimits(max_duration_s=1.0), FrameSampler.uniform(2), "MediaLimits.max_duration_s"),
        (MediaLimits(max_pixels=100 * 90), FrameSampler.uniform(2), "MediaLimits.max_pixels"),
        (MediaLimits(max_frames=10), None, "MediaLimits.max_frames"),
        (MediaLimits(max_frames=10), FrameSampler.uniform(11), "MediaLimits.max_frames"),
        (MediaLimits(max_decoded_bytes=160 * 96 * 3 * 4), FrameSampler.uniform(5), "max_decoded_bytes"),
    ],
)
def test_over_limits(good, limits, sampler, phrase):
    check(error_for(good, sampler, limits=limits), 413, phrase, source=str(good))


def test_limits_apply_to_bytes_and_data_urls(good):
    data = good.read_bytes()
    small = MediaLimits(max_bytes=len(data) - 1)
    check(error_for(data, limits=small), 413, "max_bytes")
    url = "data:video/mp4;base64," + base64.b64encode(data).decode()
    check(error_for(url, limits=small), 413, "max_bytes")


def test_frame_directory_with_a_gap(tmp_path):
    path = write_frame_dir(tmp_path / "frames", 6, skip=(4,))
    check(error_for(path), 400, "gap", "'00004.png'", source=str(path))


def test_frame_directory_oddities(tmp_path):
    mixed = write_frame_dir(tmp_path / "mixed", 3)
    (mixed / "cover.png").write_bytes((mixed / "00001.png").read_bytes())
    check(error_for(mixed), 400, "'cover.png'", "not numbered", source=str(mixed))
    empty = tmp_path / "empty"
    empty.mkdir()
    check(error_for(empty), 400, "no frame images", source=str(empty))
    sizes = write_frame_dir(tmp_path / "sizes", 3)
    write_frame_dir(tmp_path / "other", 1, height=32, width=32)
    os.replace(tmp_path / "other" / "00001.png", sizes / "00004.png")
    check(error_for(sizes), 400, "'00004.png'", "same size", source=str(sizes))


@pytest.mark.parametrize(
    ("url", "status", "phrase"),
    [
        ("data:video/mp4;base64,AAAA$$$$", 400, "invalid base64"),
        ("data:video/mp4,AAAA", 400, "base64-encoded"),
        ("data:text/plain;base64,aGVsbG8=", 415, "'text/plain' is not a video"),
        ("data:video/mp4;base64", 400, "malformed"),
    ],
)
def test_bad_data_urls(url, status, phrase):
    check(error_for(url), status, phrase)


def test_not_a_regular_file(tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)  # opening it for reading would block forever
    check(error_for(fifo, timeout_s=10), 400, "not a regular file", source=str(fifo))


def test_unsupported_scheme_and_arguments(good):
    check(error_for("ftp://example.com/a.mp4"), 400, "unsupported URL scheme 'ftp'")
    check(error_for(good, backend="opencv"), 400, "unknown backend 'opencv'")
    check(error_for(good, short_side=0), 400, "short_side")
    check(error_for(good, timeout_s=0), 400, "timeout_s")
    check(error_for(12345), 400, "unsupported video source type int")


def test_segment_outside_the_video_names_the_file(good):
    check(error_for(good, FrameSampler.uniform(4, start=100.0)), 400, "past the end", source=str(good))


def test_probe_reports_the_same_errors(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("not a video")
    with pytest.raises(VideoError, match="not a video") as info:
        probe_video(path)
    assert info.value.status == 415
