"""Bad input fails early with a ValueError that names the problem and the fix."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from conftest import random_clip

from videollm.model import VideoLLMConfig, tiny
from videollm.model.tokens import check_fits_context, num_video_tokens

ONE_VIDEO = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What happens?"}]}]


@pytest.fixture(scope="module")
def model_and_processor():
    return tiny("spatial_pool", "clip", "llama")


def _text(processor, conversation=ONE_VIDEO):
    return processor.apply_chat_template(conversation, add_generation_prompt=True)


def test_placeholders_must_match_videos(model_and_processor):
    _, processor = model_and_processor
    with pytest.raises(
        ValueError, match=r"1 <video> placeholder\(s\) but 2 video\(s\).*one <video> in the text per video"
    ):
        processor(text=_text(processor), videos=[random_clip(), random_clip()])
    with pytest.raises(ValueError, match=r"1 <video> placeholder\(s\) but 0 video\(s\)"):
        processor(text=_text(processor))


def test_model_checks_placeholders_against_features(model_and_processor):
    model, processor = model_and_processor
    inputs = processor(text=_text(processor), videos=[random_clip(4)], return_tensors="pt")
    ids = inputs["input_ids"]
    video_positions = (ids[0] == model.config.video_token_index).nonzero()[:, 0]
    ids = torch.cat(
        [ids[:, : video_positions[0]], ids[:, video_positions[0] + 1 :]], dim=1
    )  # one placeholder short
    with pytest.raises(
        ValueError, match=r"\d+ video placeholder tokens but the videos make \d+ tokens.*VideoLLMProcessor"
    ):
        model(input_ids=ids, pixel_values_videos=inputs["pixel_values_videos"])


def test_frames_of_mixed_sizes(model_and_processor):
    _, processor = model_and_processor
    frames = [
        np.zeros((40, 48, 3), np.uint8),
        np.zeros((40, 48, 3), np.uint8),
        np.zeros((30, 48, 3), np.uint8),
    ]
    with pytest.raises(ValueError, match=r"video 0 has frames of mixed sizes .*resize them to one size"):
        processor(text=_text(processor), videos=[frames])


def test_zero_frames(model_and_processor):
    model, processor = model_and_processor
    with pytest.raises(ValueError, match=r"video 0 has zero frames; check that it decodes"):
        processor(text=_text(processor), videos=[np.zeros((0, 40, 48, 3), np.uint8)])
    with pytest.raises(ValueError, match=r"zero frames"):
        model.model.get_video_features(torch.zeros(1, 0, 3, 32, 32))


def test_video_longer_than_the_context():
    _, processor = tiny(
        {"type": "spatial_pool", "mode": "avg", "stride": 2},
        text_config={"max_position_embeddings": 64},
    )
    message = (
        r"^16 frames × 4 tokens = 64 \(\+ 1 newline \+ (\d+) text tokens = \d+\) > max_position_embeddings 64; "
        r"use --frames (\d+) or connector spatial_pool stride 4$"
    )
    with pytest.raises(ValueError, match=message) as error:
        processor(text=_text(processor), videos=[random_clip(16)])
    text_tokens, frames = (int(g) for g in re.match(message, str(error.value)).groups())
    assert (
        1 + text_tokens + 4 * frames <= 64 < 1 + text_tokens + 4 * (frames + 1)
    )  # the largest count that fits
    processor(text=_text(processor), videos=[random_clip(frames)])  # and it does fit


def test_context_message_of_a_real_size_model():
    """LLaVA-OneVision's 27×27 SigLIP grid: 196 tokens per frame."""
    with pytest.raises(ValueError) as error:
        check_fits_context({"type": "spatial_pool"}, "none", [48], (27, 27), 0, 8192)
    assert str(error.value) == (
        "48 frames × 196 tokens = 9408 > max_position_embeddings 8192; use --frames 41 or connector spatial_pool stride 3"
    )


def test_bad_video_values(model_and_processor):
    _, processor = model_and_processor
    with pytest.raises(ValueError, match=r"is a path; decode it first"):
        processor(text=_text(processor), videos=["clip.mp4"])
    with pytest.raises(ValueError, match=r"must be uint8 pixels 0–255, got float32"):
        processor(text=_text(processor), videos=[random_clip().astype(np.float32)])
    with pytest.raises(ValueError, match=r"frame 0 has shape \(4, 40, 48\); frames must be H×W×3 RGB"):
        processor(text=_text(processor), videos=[random_clip()[..., 0]])
    with pytest.raises(ValueError, match=r"must be T×H×W×3 RGB frames, got shape \(4, 40, 48, 1\)"):
        processor(text=_text(processor), videos=[random_clip()[..., :1]])


def test_time_instruction_needs_timestamps():
    _, processor = tiny(time_instruction=True)
    with pytest.raises(
        ValueError, match=r"time_instruction needs frame timestamps; pass a videollm.video.Video"
    ):
        processor(text=_text(processor), videos=[random_clip()])


def test_bad_config_values():
    clip = {
        "model_type": "clip_vision_model",
        "image_size": 32,
        "patch_size": 8,
        "hidden_size": 32,
        "num_attention_heads": 2,
    }
    with pytest.raises(ValueError, match=r"class token.*set vision_feature_select_strategy='default'"):
        VideoLLMConfig(vision_config=clip, vision_feature_select_strategy="full")
    with pytest.raises(ValueError, match=r"newline='after' is invalid; use 'video'"):
        VideoLLMConfig(vision_config=clip, vision_feature_select_strategy="default", newline="after")
    with pytest.raises(ValueError, match=r"connector.type='pooling' is invalid: use one of"):
        VideoLLMConfig(
            vision_config=clip, vision_feature_select_strategy="default", connector={"type": "pooling"}
        )
    with pytest.raises(
        ValueError, match=r"newline='frame'.*not a whole number per frame.*use newline 'video' or 'none'"
    ):
        num_video_tokens({"type": "spatiotemporal_pool"}, "frame", 3, (4, 4))
