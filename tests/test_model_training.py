"""What trains: gradients with a frozen image model, and new modules' init when a checkpoint lacks them."""

from __future__ import annotations

import pytest
import torch
from conftest import random_clip

from videollm.model import VideoLLMForConditionalGeneration, tiny

PROMPT = [
    {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What happens?"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "It moves."}]},
]


def _batch(processor, frames=3):
    text = processor.apply_chat_template(PROMPT)
    inputs = processor(text=text, videos=[random_clip(frames)], return_tensors="pt")
    inputs["labels"] = inputs["input_ids"].clone()
    return inputs


@pytest.mark.parametrize(
    "connector",
    [
        {"type": "resampler", "num_queries": 4},  # before the projector, learned queries
        {"type": "spatial_pool", "temporal_embed": "learned"},  # after the projector, learned frame embedding
    ],
)
def test_frozen_image_model_trains_exactly_connector_and_projector(connector):
    model, processor = tiny(connector, "siglip", "qwen2", newline="none")
    model.train()
    for module in (model.model.vision_tower, model.model.language_model, model.lm_head):
        module.requires_grad_(False)
    model.model.image_newline.requires_grad_(False)
    model(**_batch(processor)).loss.backward()

    with_grad = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    expected = {
        n
        for n, _ in model.named_parameters()
        if n.startswith(("model.connector.", "model.multi_modal_projector."))
    }
    assert any(n.startswith("model.connector.") for n in expected)
    assert with_grad == expected


def test_adapters_start_as_the_image_model(tmp_path):
    """A checkpoint without adapters, loaded with ST-Adapters + prompts: adapters zero-init, outputs unchanged."""
    model, processor = tiny("spatial_pool", "clip", "llama", seed=2)
    model.save_pretrained(tmp_path)
    adapted, info = VideoLLMForConditionalGeneration.from_pretrained(
        tmp_path, adapter={"layers": [0, 1]}, output_loading_info=True
    )
    assert all(".st_adapter." in k for k in info["missing_keys"]) and info["missing_keys"]
    for name, param in adapted.named_parameters():
        if ".st_adapter.up." in name:
            assert torch.count_nonzero(param) == 0, name
        elif ".st_adapter." in name and name.endswith("weight"):
            assert torch.isfinite(param).all() and param.abs().sum() > 0, (
                name
            )  # initialised, not empty memory
    inputs = _batch(processor)
    with torch.no_grad():
        assert torch.allclose(adapted.eval()(**inputs).logits, model(**inputs).logits, atol=1e-6)

    fresh, _ = tiny("spatial_pool", "clip", "llama", adapter={"layers": [1]})
    up = fresh.model.vision_tower.encoder.layers[1].st_adapter.up
    assert torch.count_nonzero(up.weight) == 0 and torch.count_nonzero(up.bias) == 0
