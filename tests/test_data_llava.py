"""LLaVA conversation datasets: validation that points at file and record, mixing, lazy decoding, the
frame cache, and modality-grouped sampling."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from trainkit import render_world

from videollm.data.frame_cache import FrameCache
from videollm.data.grouping import ModalityLengthGroupedSampler, grouped_indices, grouped_length
from videollm.data.llava import DataError, DataSource, LlavaDataset, load_records, mixture, read_json_records
from videollm.video import FrameSampler


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return render_world(tmp_path_factory.mktemp("world"), num_videos=3)


def _write(path: Path, records: list) -> str:
    path.write_text(json.dumps(records))
    return str(path)


def test_every_problem_is_reported_at_once_with_file_and_record(tmp_path, world):
    video = "train/videos/synth_s0_train_00000.mp4"
    good = {
        "id": "ok",
        "video": video,
        "conversations": [{"from": "human", "value": "<video>\nQ?"}, {"from": "gpt", "value": "A."}],
    }
    bad = [
        good,
        {"id": "missing", "video": "train/videos/nope.mp4", "conversations": good["conversations"]},
        {
            "id": "noph",
            "video": video,
            "conversations": [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A."}],
        },
        {
            "id": "count",
            "video": video,
            "conversations": [
                {"from": "human", "value": "<video><video>\nQ?"},
                {"from": "gpt", "value": "A."},
            ],
        },
        {
            "id": "empty",
            "video": video,
            "conversations": [{"from": "human", "value": "<video>\nQ?"}, {"from": "gpt", "value": "  "}],
        },
        {
            "id": "role",
            "video": video,
            "conversations": [{"from": "human", "value": "<video>\nQ?"}, {"from": "bot", "value": "A."}],
        },
        {
            "id": "gptph",
            "video": video,
            "conversations": [
                {"from": "human", "value": "<video>\nQ?"},
                {"from": "gpt", "value": "<image> A."},
            ],
        },
        {"conversations": [{"from": "human", "value": "<image>\nQ?"}, {"from": "gpt", "value": "A."}]},
    ]
    path = _write(tmp_path / "data.json", bad)
    with pytest.raises(DataError) as info:
        load_records([DataSource(path, media_root=str(world))])
    message = str(info.value)
    problems = info.value.problems
    assert "in 7 record(s)" in message
    expected = {
        1: ("'missing'", "not found at", "nope.mp4"),
        2: ("'noph'", "no <video> placeholder"),
        3: ("'count'", "2 <video> placeholder(s) but 1 video(s)"),
        4: ("'empty'", "empty assistant"),
        5: ("'role'", "unknown role", "'bot'"),
        6: ("'gptph'", "placeholders go in human turns only"),
        7: ("record 7", "1 <image> placeholder(s) but 0 image(s)"),
    }
    for index, fragments in expected.items():
        hits = [p for p in problems if f"{path}: record {index}" in p]
        assert hits, f"record {index} not reported: {problems}"
        assert all(any(f in p for p in hits) for f in fragments), (index, hits)
    assert not any("record 0" in p for p in problems)


def test_jsonl_and_malformed_lines(tmp_path, world):
    line = {
        "id": "a",
        "image": "train/frames/synth_s0_train_00000_t004.png",
        "conversations": [{"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "Shapes."}],
    }
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(line) + "\n\n" + json.dumps({**line, "id": "b"}) + "\n")
    assert [r["id"] for r in read_json_records(good)] == ["a", "b"]
    (records,) = load_records([DataSource(str(good), media_root=str(world))])
    assert [r.modality for r in records] == ["image", "image"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(line) + "\n{not json\n")
    with pytest.raises(DataError, match=r"bad.jsonl: line 2: invalid JSON"):
        read_json_records(bad)


def test_turns_become_chat_messages_with_media_parts(tmp_path, world):
    rec = {
        "id": "m",
        "video": "train/videos/synth_s0_train_00000.mp4",
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": "<video>\nWhat moves?"},
            {"from": "gpt", "value": "A circle."},
            {"from": "human", "value": "Then?\n"},
            {"from": "gpt", "value": "It stops."},
        ],
    }
    (records,) = load_records([DataSource(_write(tmp_path / "m.json", [rec]), media_root=str(world))])
    (r,) = records
    assert [m["role"] for m in r.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert r.messages[1]["content"] == [{"type": "video"}, {"type": "text", "text": "What moves?"}]
    assert r.videos == (str(world / "train/videos/synth_s0_train_00000.mp4"),)


def test_mixture_weights_repeat_and_subsample_deterministically():
    pairs = mixture([4, 10], [2.0, 0.5], seed=3)
    counts = Counter(pairs)
    assert all(counts[(0, i)] == 2 for i in range(4))
    second = [i for s, i in pairs if s == 1]
    assert len(second) == 5 and len(set(second)) == 5
    assert mixture([4, 10], [2.0, 0.5], seed=3) == pairs
    assert mixture([4, 10], [2.0, 0.5], seed=4) != pairs


def test_bad_weight_and_missing_file_are_reported(tmp_path):
    with pytest.raises(DataError) as info:
        load_records(
            [DataSource(str(tmp_path / "none.json")), DataSource(str(tmp_path / "none.json"), weight=0)]
        )
    text = str(info.value)
    assert "none.json: file not found" in text and "weight must be a number > 0" in text


def test_dataset_decodes_videos_and_images_lazily(world):
    files = [DataSource(str(world / "train" / "instruct.json"))]
    ds = LlavaDataset(files, FrameSampler.uniform(4))
    kinds = ds.modalities
    v = kinds.index("video")
    i = kinds.index("image")
    sample = ds[v]
    (video,) = sample.videos
    assert video.frames.shape == (4, 32, 32, 3) and video.frames.dtype == np.uint8
    assert np.all(np.diff(video.timestamps) > 0)
    image = ds[i].images[0]
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert sample.messages[0]["content"][0] == {"type": "video"}


def test_frame_cache_serves_the_same_frames_on_the_second_read(tmp_path, world):
    cache = FrameCache(tmp_path / "cache")
    files = [DataSource(str(world / "train" / "align.json"))]
    ds = LlavaDataset(files, FrameSampler.uniform(4), frame_cache=cache)
    v = ds.modalities.index("video")
    first = ds[v].videos[0]
    assert (cache.hits, cache.misses) == (0, 1)
    second = ds[v].videos[0]
    assert (cache.hits, cache.misses) == (1, 1)
    np.testing.assert_array_equal(first.frames, second.frames)
    np.testing.assert_allclose(first.timestamps, second.timestamps)
    assert (first.fps, first.num_source_frames) == (second.fps, second.num_source_frames)
    # A different sampler is a different entry.
    other = LlavaDataset(files, FrameSampler.uniform(2), frame_cache=cache)
    assert other[v].videos[0].num_frames == 2 and cache.misses == 2


def test_grouped_batches_hold_one_modality_sorted_by_length():
    rng = np.random.default_rng(0)
    modalities = ["video"] * 13 + ["image"] * 9 + ["text"] * 6
    lengths = rng.integers(1, 100, len(modalities)).tolist()
    megabatch = 4
    order = grouped_indices(modalities, lengths, megabatch, seed=1)
    assert len(order) == grouped_length(modalities, megabatch) == 16 + 12 + 8
    assert set(order) == set(range(len(modalities)))  # every sample, each modality topped up with its own
    for start in range(0, len(order), megabatch):
        chunk = order[start : start + megabatch]
        assert len({modalities[i] for i in chunk}) == 1
        assert [lengths[i] for i in chunk] == sorted((lengths[i] for i in chunk), reverse=True)
    sampler = ModalityLengthGroupedSampler(modalities, lengths, batch_size=2, world_size=2, seed=1)
    assert list(sampler) == order and len(sampler) == len(order)
    sampler.set_epoch(1)
    assert list(sampler) != order
    sampler.set_epoch(0)
    assert list(sampler) == order


def test_images_as_video_become_one_frame_videos_in_their_place(tmp_path, world):
    records = json.loads((world / "train" / "instruct.json").read_text())
    image = next(r["image"] for r in records if "image" in r)
    video = next(r["video"] for r in records if "video" in r)
    mixed = {
        "id": "mixed",
        "image": image,
        "video": video,
        "conversations": [
            {"from": "human", "value": "<image>\nThis frame, then <video>\nthis clip: same objects?"},
            {"from": "gpt", "value": "Yes."},
        ],
    }
    source = [DataSource(_write(tmp_path / "mixed.json", [mixed]), str(world / "train"))]
    plain = LlavaDataset(source, FrameSampler.uniform(4))[0]
    as_video = LlavaDataset(source, FrameSampler.uniform(4), images_as_video=True)[0]
    assert [p["type"] for p in plain.messages[0]["content"]] == ["image", "text", "video", "text"]
    assert [p["type"] for p in as_video.messages[0]["content"]] == ["video", "text", "video", "text"]
    assert as_video.images == [] and [v.num_frames for v in as_video.videos] == [1, 4]
    assert np.array_equal(as_video.videos[0].frames[0], plain.images[0])  # the same pixels, now a frame
    assert np.array_equal(as_video.videos[1].frames, plain.videos[0].frames)
