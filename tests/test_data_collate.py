"""Samples → model inputs: chat template, placeholder expansion, assistant-only labels, skipping of
sequences that are too long after expansion, padding. Run against transformers' stock
LLaVA-OneVision processor and videollm's own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from trainkit import render_world, stock_processor

from videollm.data.collate import IGNORE_INDEX, Collator, SupervisedDataset, encode
from videollm.data.llava import DataSource, LlavaDataset, Sample
from videollm.video import FrameSampler, Video

CONVERSATION = [
    {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What moves?"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "A red circle."}]},
    {"role": "user", "content": [{"type": "text", "text": "And then?"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "It stops."}]},
]
REPLIES = "A red circle.<|im_end|>\nIt stops.<|im_end|>\n"


def _video(frames: int = 4, seed: int = 0) -> Video:
    pixels = np.random.default_rng(seed).integers(0, 256, (frames, 40, 48, 3), dtype=np.uint8)
    return Video(
        pixels,
        np.arange(frames) / 8,
        np.arange(frames),
        fps=8.0,
        duration=frames / 8,
        num_source_frames=frames,
    )


def _sample(messages=CONVERSATION, videos=None, images=None) -> Sample:
    modality = "video" if videos else "image" if images else "text"
    return Sample("s", "f.json: record 0", modality, messages, videos or [], images or [])


@pytest.fixture(scope="module")
def ours():
    from videollm.model import tiny

    return tiny(time_instruction=True)[1]


def _supervised(tokenizer, item) -> str:
    return tokenizer.decode(item["input_ids"][item["labels"] != IGNORE_INDEX])


def test_only_assistant_turns_are_labelled_stock_processor():
    processor = stock_processor()
    item = encode(processor, _sample(videos=[_video(4)]))
    assert _supervised(processor.tokenizer, item) == REPLIES
    ids = item["input_ids"]
    video_id = processor.video_token_id
    assert int((ids == video_id).sum()) == 4 * 2 * 2 + 1  # 4 frames pooled to 2×2, plus the newline
    assert item["pixel_values_videos"].shape == (1, 4, 3, 32, 32)
    labelled = item["labels"] != IGNORE_INDEX
    assert torch.equal(item["labels"][labelled], ids[labelled])
    assert not (labelled & (ids == video_id)).any()


def test_only_assistant_turns_are_labelled_with_a_time_instruction(ours):
    # videollm's processor writes a time instruction after each video: text the template never saw.
    item = encode(ours, _sample(videos=[_video(3)]))
    text = ours.tokenizer.decode(item["input_ids"])
    assert "The video lasts for 0.38 seconds" in text
    assert _supervised(ours.tokenizer, item) == REPLIES
    assert int((item["input_ids"] == ours.video_token_id).sum()) == ours.video_num_tokens(3)


def test_image_samples_expand_anyres_placeholders(ours):
    image = np.random.default_rng(1).integers(0, 256, (40, 70, 3), dtype=np.uint8)
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Colour?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Blue."}]},
    ]
    for processor in (stock_processor(), ours):
        item = encode(processor, _sample(messages, images=[image]))
        assert _supervised(processor.tokenizer, item) == "Blue.<|im_end|>\n"
        assert int((item["input_ids"] == processor.image_token_id).sum()) > 16
        assert item["pixel_values"].shape[0] == 1 and "image_sizes" in item


def test_collator_pads_and_batches_media():
    processor = stock_processor()
    short = [CONVERSATION[0], {"role": "assistant", "content": [{"type": "text", "text": "Hi."}]}]
    items = [
        {**encode(processor, _sample(videos=[_video(4)])), "id": "a", "skipped": []},
        {**encode(processor, _sample(short, videos=[_video(4, seed=1)])), "id": "b", "skipped": ["x"]},
    ]
    batch = Collator(processor.tokenizer.pad_token_id)(items)
    n0, n1 = len(items[0]["input_ids"]), len(items[1]["input_ids"])
    assert batch["input_ids"].shape == (2, max(n0, n1))
    assert batch["attention_mask"].sum(1).tolist() == [n0, n1]
    assert (batch["labels"][1, n1:] == IGNORE_INDEX).all()
    assert (batch["input_ids"][1, n1:] == processor.tokenizer.pad_token_id).all()
    assert batch["pixel_values_videos"].shape == (2, 4, 3, 32, 32)
    assert batch["ids"] == ["a", "b"] and batch["skipped"] == ["x"]


def test_videos_with_different_frame_counts_stay_a_list(ours):
    items = [{**encode(ours, _sample(videos=[_video(n)])), "id": str(n), "skipped": []} for n in (4, 3)]
    batch = Collator(ours.tokenizer.pad_token_id)(items)
    assert isinstance(batch["pixel_values_videos"], list)
    assert [v.shape[0] for v in batch["pixel_values_videos"]] == [4, 3]


def test_too_long_after_expansion_is_skipped_counted_and_replaced(tmp_path: Path, ours):
    world = render_world(tmp_path / "world", num_videos=2)
    video = str(world / "train" / "videos" / "synth_s0_train_00000.mp4")
    image = str(world / "train" / "frames" / "synth_s0_train_00000_t004.png")

    def record(rid: str, question: str, media: str = "video") -> dict:
        path = video if media == "video" else image
        return {
            "id": rid,
            media: path,
            "conversations": [
                {"from": "human", "value": f"<{media}>\n{question}"},
                {"from": "gpt", "value": "Yes."},
            ],
        }

    records = [record("long", "word " * 200), record("img", "Why?", "image"), record("short", "Why?")]
    data = tmp_path / "d.json"
    data.write_text(json.dumps(records))
    dataset = LlavaDataset([DataSource(str(data))], FrameSampler.uniform(4))
    short_len = len(encode(ours, dataset[2])["input_ids"])
    supervised = SupervisedDataset(dataset, ours, max_length=short_len + 10)
    item = supervised[0]
    # The over-long video sample is replaced by the next *video* sample (the image is skipped over).
    assert item["id"] == "short"
    assert item["skipped"] == [f"{data}: record 0 (id 'long')"]
    assert len(item["input_ids"]) == short_len  # nothing truncated
    assert supervised[0]["skipped"] == [f"{data}: record 0 (id 'long')"]  # remembered, not re-encoded
    assert supervised[1]["id"] == "img" and supervised[1]["skipped"] == []
    with pytest.raises(ValueError, match="every video sample is longer than max_length=5"):
        SupervisedDataset(dataset, ours, max_length=5)[0]
