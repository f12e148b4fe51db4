"""videollm vs stock transformers: same weights, same inputs → the same numbers; checkpoints stock loads."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import random_clip
from safetensors import safe_open
from transformers import (
    LlavaNextVideoConfig,
    LlavaNextVideoForConditionalGeneration,
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionProcessor,
    LlavaOnevisionVideoProcessor,
)

from videollm.model import VideoLLMForConditionalGeneration, VideoLLMProcessor
from videollm.model.checkpoint import SAVED_PREFIXES
from videollm.model.frames import FrameTransform, preprocess_frames

PROMPT = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What moves?"}]}]


def _inputs(processor, frames=4, seed=0):
    text = processor.apply_chat_template(PROMPT, add_generation_prompt=True)
    return processor(text=text, videos=[random_clip(frames, seed=seed)], return_tensors="pt")


@pytest.mark.parametrize("vision,lm", [("siglip", "qwen2"), ("clip", "llama")])
def test_default_connector_gives_onevision_logits(tiny_model, vision, lm):
    model, processor = tiny_model("spatial_pool", vision, lm)
    assert model.config.is_onevision
    stock = LlavaOnevisionForConditionalGeneration(model.config.to_onevision()).eval()
    stock.load_state_dict(model.state_dict(), strict=True)
    inputs = _inputs(processor)
    with torch.no_grad():
        ours, theirs = model(**inputs).logits, stock(**inputs).logits
    assert torch.equal(ours, theirs)


def test_avg_pool_before_projector_gives_next_video_logits(tiny_model):
    model, processor = tiny_model(
        {"type": "spatial_pool", "mode": "avg", "stride": 2, "stage": "pre"}, newline="none"
    )
    config = model.config
    stock_config = LlavaNextVideoConfig(
        vision_config=config.vision_config.to_dict(),
        text_config=config.text_config.to_dict(),
        image_token_index=config.image_token_index,
        video_token_index=config.video_token_index,
        vision_feature_layer=config.vision_feature_layer,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        spatial_pool_mode="average",
        spatial_pool_stride=2,
    )
    stock = LlavaNextVideoForConditionalGeneration(stock_config).eval()
    stock.load_state_dict(model.state_dict(), strict=True)  # same keys: the pooler has no weights
    inputs = _inputs(processor, frames=3)
    assert (inputs["input_ids"] == config.video_token_index).sum() == 3 * 2 * 2  # 4×4 grid pooled to 2×2
    with torch.no_grad():
        ours = model(**inputs).logits
        theirs = stock(
            input_ids=inputs["input_ids"], pixel_values_videos=inputs["pixel_values_videos"]
        ).logits
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("size", [(40, 48), (20, 30), (32, 32), (100, 77)])
def test_frames_match_stock_video_processor(size):
    frames = random_clip(3, *size, seed=1)
    stock = LlavaOnevisionVideoProcessor(size={"height": 32, "width": 32})
    theirs = stock(videos=[frames], return_tensors="pt")["pixel_values_videos"][0]
    ours = preprocess_frames(frames, FrameTransform(size=(32, 32)))
    assert ours.shape == theirs.shape == (3, 3, 32, 32)
    # Same interpolate call on uint8, same fused normalisation: equal to the last bit on this stack.
    assert (ours - theirs).abs().max().item() <= 1e-6


def test_onevision_checkpoint_is_stock_onevision(onevision_tiny, tmp_path):
    model, processor = onevision_tiny
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "llava_onevision"
    assert config["architectures"] == ["LlavaOnevisionForConditionalGeneration"]
    assert (
        json.loads((tmp_path / "processor_config.json").read_text())["processor_class"]
        == "LlavaOnevisionProcessor"
    )

    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        keys = list(f.keys())
    assert all(k.startswith(SAVED_PREFIXES) for k in keys), [
        k for k in keys if not k.startswith(SAVED_PREFIXES)
    ]
    assert any(
        k.startswith("vision_tower.vision_model.encoder.layers.") for k in keys
    )  # the layout vLLM reads

    stock, info = LlavaOnevisionForConditionalGeneration.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    stock_processor = LlavaOnevisionProcessor.from_pretrained(tmp_path)
    text = stock_processor.apply_chat_template(PROMPT, add_generation_prompt=True)
    frames = random_clip(4)
    theirs = stock_processor(text=text, videos=[frames], return_tensors="pt")
    ours = processor(text=text, videos=[frames], return_tensors="pt")
    assert torch.equal(theirs["input_ids"], ours["input_ids"])
    assert torch.allclose(theirs["pixel_values_videos"], ours["pixel_values_videos"], atol=1e-6)
    with torch.no_grad():
        assert torch.equal(stock.eval()(**theirs).logits, model(**ours).logits)

    reloaded = VideoLLMForConditionalGeneration.from_pretrained(tmp_path)
    assert reloaded.config.is_onevision and type(reloaded.config).__name__ == "VideoLLMConfig"
    ours_again = VideoLLMProcessor.from_pretrained(tmp_path)
    assert ours_again.frame_transform == processor.frame_transform
    with torch.no_grad():
        assert torch.equal(reloaded.eval()(**ours).logits, model(**ours).logits)


def test_stock_onevision_checkpoint_loads_as_videollm(tmp_path):
    """A checkpoint stock transformers wrote (flattened vision tower) loads into the videollm classes."""
    from videollm.model import tiny

    model, _ = tiny("spatial_pool", "siglip", "qwen2", seed=3)
    stock = LlavaOnevisionForConditionalGeneration(model.config.to_onevision())
    stock.load_state_dict(model.state_dict())
    stock.save_pretrained(tmp_path)
    ours, info = VideoLLMForConditionalGeneration.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    state = model.state_dict()
    assert all(torch.equal(t, state[k]) for k, t in ours.state_dict().items())
