"""Sampling math: the ecosystem's conventions, bounds, and the corner cases around them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from videollm.video import FrameSampler, VideoError
from videollm.video.sampling import snap_to_keyframes

frame_counts = st.integers(min_value=1, max_value=5000)
rates = st.floats(min_value=0.5, max_value=120, allow_nan=False)


def test_uniform_matches_lmms_eval_and_llava_onevision():
    # lmms-eval llava_onevision.load_video: np.linspace(0, total_frame_num - 1, n, dtype=int)
    for total, n in [(300, 8), (18000, 32), (91, 16), (10, 10)]:
        expected = np.linspace(0, total - 1, n, dtype=int)
        np.testing.assert_array_equal(FrameSampler.uniform(n).indices(total, 30.0), expected)


def test_fps_matches_llava_video():
    # LLaVA-Video load_video: step = round(avg_fps / fps); range(0, len(vr), step); uniform when too many
    assert FrameSampler.fps(1).indices(100, 30.0).tolist() == list(range(0, 100, 30))
    assert FrameSampler.fps(2).indices(100, 25.0).tolist() == list(range(0, 100, round(25 / 2)))
    capped = FrameSampler.fps(10, max_frames=4).indices(300, 30.0)
    np.testing.assert_array_equal(capped, np.linspace(0, 299, 4, dtype=int))


def test_fps_above_the_source_rate_gives_every_frame_once():
    assert FrameSampler.fps(120).indices(20, 30.0).tolist() == list(range(20))


def test_more_frames_than_the_video_has_gives_each_frame_once():
    assert FrameSampler.uniform(50).indices(7, 30.0).tolist() == list(range(7))


def test_segment_bounds_select_frames_whose_time_lies_inside():
    # frames at i / 10 s; [1.0, 2.0] holds frames 10..20 inclusive
    idx = FrameSampler.uniform(11, start=1.0, end=2.0).indices(100, 10.0)
    assert idx.tolist() == list(range(10, 21))
    assert FrameSampler.uniform(3, start=1.05, end=1.95).indices(100, 10.0).tolist() == [11, 15, 19]
    # end past the video clips to the last frame; start only
    assert FrameSampler.uniform(2, end=99.0).indices(50, 10.0).tolist() == [0, 49]
    assert FrameSampler.uniform(2, start=4.0).indices(50, 10.0).tolist() == [40, 49]


def test_segment_between_two_frames_gives_the_nearest_one():
    assert FrameSampler.uniform(4, start=1.01, end=1.02).indices(100, 10.0).tolist() == [10]


def test_start_past_the_end_is_an_error():
    with pytest.raises(VideoError, match="past the end"):
        FrameSampler.uniform(4, start=11.0).indices(100, 10.0)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: FrameSampler.uniform(0), "≥ 1"),
        (lambda: FrameSampler.uniform(2.5), "integer"),
        (lambda: FrameSampler.fps(0), "> 0"),
        (lambda: FrameSampler.fps(float("nan")), "> 0"),
        (lambda: FrameSampler.uniform(4, start=-1), "start"),
        (lambda: FrameSampler.uniform(4, start=3, end=2), "before start"),
        (lambda: FrameSampler.uniform(4, mode="fast"), "mode"),
    ],
)
def test_bad_sampler_arguments_are_clear_errors(make, match):
    with pytest.raises(VideoError, match=match) as info:
        make()
    assert info.value.status == 400


def test_empty_video_cannot_be_sampled():
    with pytest.raises(VideoError, match="no frames"):
        FrameSampler.uniform(4).indices(0, 30.0)


@given(total=frame_counts, n=st.integers(min_value=1, max_value=600), fps=rates)
def test_uniform_properties(total, n, fps):
    idx = FrameSampler.uniform(n).indices(total, fps)
    assert idx.dtype == np.int64
    assert len(idx) == min(n, total)
    assert np.all(np.diff(idx) > 0)
    assert idx[0] == 0
    if n > 1:
        assert idx[-1] == total - 1


@given(
    total=frame_counts,
    fps=rates,
    n=st.integers(min_value=1, max_value=64),
    start=st.floats(min_value=0, max_value=200),
    length=st.floats(min_value=0, max_value=200),
)
def test_segments_stay_inside_the_video_and_the_segment(total, fps, n, start, length):
    end = start + length
    sampler = FrameSampler.uniform(n, start=start, end=end)
    if start * fps > total - 1 + 1e-6:
        with pytest.raises(VideoError):
            sampler.indices(total, fps)
        return
    idx = sampler.indices(total, fps)
    assert 1 <= len(idx) <= n
    assert np.all(np.diff(idx) > 0)
    assert idx.min() >= 0 and idx.max() <= total - 1
    inside = (idx / fps >= start - 1e-6) & (idx / fps <= end + 1e-6)
    assert inside.all() or len(idx) == 1  # a sub-frame segment yields its nearest frame


@given(total=frame_counts, fps=rates, f=rates, cap=st.one_of(st.none(), st.integers(1, 64)))
def test_fps_properties(total, fps, f, cap):
    idx = FrameSampler.fps(f, max_frames=cap).indices(total, fps)
    assert len(idx) >= 1 and np.all(np.diff(idx) > 0)
    assert idx.max() <= total - 1
    if cap is not None:
        assert len(idx) <= cap


@given(
    keys=st.lists(st.integers(0, 1000), min_size=1, max_size=20, unique=True),
    idx=st.lists(st.integers(0, 1000), min_size=1, max_size=50),
)
def test_snap_picks_the_nearest_keyframe(keys, idx):
    keys_arr = np.array(sorted(keys))
    snapped = snap_to_keyframes(np.array(idx), keys_arr)
    assert set(snapped.tolist()) <= set(keys)
    for i, s in zip(idx, snapped, strict=True):
        assert abs(s - i) == np.abs(keys_arr - i).min()
