"""The frame counter survives H.264 and resizing, and refuses to guess on frames without one."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from PIL import Image

from tests.media import counter_frames
from videollm.video.counter import MAX_INDEX, draw_counter, read_counter
from videollm.video.encode import write_video


@pytest.mark.parametrize("index", [0, 1, 2, 255, 1234, MAX_INDEX])
def test_round_trip_on_raw_frames(index):
    frame = np.full((64, 64, 3), 127, dtype=np.uint8)
    assert read_counter(draw_counter(frame, index)) == index


def test_draw_does_not_modify_its_input():
    frame = np.zeros((64, 64, 3), dtype=np.uint8)
    draw_counter(frame, 5)
    assert not frame.any()


def test_survives_h264_on_noise_and_resizing():
    rng = np.random.default_rng(0)
    frames = [draw_counter(rng.integers(0, 256, (72, 128, 3), dtype=np.uint8), i * 997) for i in range(12)]
    buffer = io.BytesIO()
    write_video(buffer, frames, crf=30, container_format="mp4")
    buffer.seek(0)
    with av.open(buffer) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert [read_counter(f) for f in decoded] == [i * 997 for i in range(12)]
    half = [np.asarray(Image.fromarray(f).resize((64, 36), Image.Resampling.BICUBIC)) for f in decoded]
    assert [read_counter(f) for f in half] == [i * 997 for i in range(12)]


def test_absent_or_damaged_counter_is_an_error():
    with pytest.raises(ValueError, match="ambiguous"):
        read_counter(np.full((64, 64, 3), 128, dtype=np.uint8))
    frame = draw_counter(np.zeros((64, 64, 3), dtype=np.uint8), 6)
    frame[0:4, 4:8] = 255 - frame[0:4, 4:8]  # flip one data cell: parity must catch it
    with pytest.raises(ValueError, match="parity"):
        read_counter(frame)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="index"):
        draw_counter(np.zeros((64, 64, 3), dtype=np.uint8), MAX_INDEX + 1)
    with pytest.raises(ValueError, match="too small"):
        draw_counter(np.zeros((16, 64, 3), dtype=np.uint8), 1)
    with pytest.raises(ValueError, match="uint8"):
        draw_counter(np.zeros((64, 64), dtype=np.uint8), 1)


def test_test_media_frames_carry_their_index():
    assert [read_counter(f) for f in counter_frames(5)] == [0, 1, 2, 3, 4]
