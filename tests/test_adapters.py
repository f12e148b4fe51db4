"""ST-Adapters and visual prompts inside real (tiny, random) CLIP and SigLIP vision towers."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel, SiglipVisionConfig, SiglipVisionModel

from videollm.model.adapters import STAdapter, adapter_parameters, apply_adapters, frames_per_video

TOWERS = {
    "clip": (CLIPVisionModel, CLIPVisionConfig),  # class token + 16 patches
    "siglip": (SiglipVisionModel, SiglipVisionConfig),  # 16 patches
}


def tower(kind: str, seed: int = 0) -> nn.Module:
    model_cls, config_cls = TOWERS[kind]
    config = config_cls(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        image_size=24,
        patch_size=6,
    )
    torch.manual_seed(seed)
    return model_cls(config).eval()


def outputs(model: nn.Module, pixels: torch.Tensor, frames: int) -> list[torch.Tensor]:
    with frames_per_video(model, frames), torch.no_grad():
        out = model(pixels, output_hidden_states=True)
    return [out.last_hidden_state, out.pooler_output, *out.hidden_states]


def perturb(model: nn.Module) -> None:
    """Give every adapter non-zero weights, as training would."""
    with torch.no_grad():
        for adapter in (m for m in model.modules() if isinstance(m, STAdapter)):
            adapter.up.weight.normal_(std=0.5)


@pytest.mark.parametrize("kind", sorted(TOWERS))
@pytest.mark.parametrize("kernel", [(3, 1, 1), (3, 3, 3)])
def test_st_adapter_leaves_the_image_model_unchanged_at_step_zero(kind, kernel):
    model = tower(kind)
    pixels = torch.randn(6, 3, 24, 24)  # 2 videos × 3 frames
    before = outputs(model, pixels, frames=3)
    apply_adapters(model, {"kernel_size": list(kernel)}, None)
    assert sum(isinstance(m, STAdapter) for m in model.modules()) == 3  # every block by default
    after = outputs(model, pixels, frames=3)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.parametrize("kind", sorted(TOWERS))
def test_temporal_conv_mixes_frames_within_a_video_only(kind):
    model = tower(kind)
    apply_adapters(model, {"layers": [0, 2], "bottleneck": 8}, None)
    perturb(model)
    pixels = torch.randn(6, 3, 24, 24)
    changed = pixels.clone()
    changed[1] += 1.0  # second frame of the first video
    base, new = outputs(model, pixels, 3)[0], outputs(model, changed, 3)[0]
    assert not torch.allclose(base[0], new[0])  # its neighbour in the same video sees it
    assert torch.equal(base[3:], new[3:])  # the other video does not
    single, single_new = outputs(model, pixels, 1)[0], outputs(model, changed, 1)[0]
    assert torch.equal(single[0], single_new[0])  # outside a video fold, frames are independent images


def test_frames_per_video_checks_the_batch_and_restores_the_fold():
    model = tower("siglip")
    apply_adapters(model, {}, None)
    with (
        frames_per_video(model, 4),
        pytest.raises(ValueError, match=r"batch of 6 frames, not a multiple of.*=4"),
    ):
        model(torch.randn(6, 3, 24, 24))
    assert all(m.frames == 1 for m in model.modules() if isinstance(m, STAdapter))
    with pytest.raises(ValueError, match="at least 1 frame"), frames_per_video(model, 0):
        pass


@pytest.mark.parametrize("kind", sorted(TOWERS))
def test_only_adapters_train_in_a_frozen_tower(kind):
    model = tower(kind)
    apply_adapters(model, {"layers": [1]}, {"num_tokens": 3})
    trainable = dict(adapter_parameters(model))
    for name, param in model.named_parameters():
        param.requires_grad_(name in trainable)
    assert set(trainable) == {
        "embeddings.visual_prompt.tokens",
        *(
            f"encoder.layers.1.st_adapter.{p}"
            for p in ("down.weight", "down.bias", "conv.weight", "conv.bias")
        ),
        *(f"encoder.layers.1.st_adapter.{p}" for p in ("up.weight", "up.bias")),
    }
    with frames_per_video(model, 2):
        model(torch.randn(4, 3, 24, 24)).last_hidden_state.square().sum().backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(grads[n] is None for n in grads if n not in trainable)
    assert grads["embeddings.visual_prompt.tokens"].abs().sum() > 0
    assert grads["encoder.layers.1.st_adapter.up.weight"].abs().sum() > 0  # the zero-init output learns first


@pytest.mark.parametrize("kind", sorted(TOWERS))
def test_visual_prompts_change_features_but_not_the_token_count(kind):
    plain, prompted = tower(kind), tower(kind)
    apply_adapters(prompted, None, {"num_tokens": 5})
    pixels = torch.randn(2, 3, 24, 24)
    ref, out = outputs(plain, pixels, 1), outputs(prompted, pixels, 1)
    assert [t.shape for t in out] == [t.shape for t in ref]  # every hidden state: same positions as before
    assert not torch.allclose(ref[0], out[0])  # the prompts take part in attention
    if kind == "clip":  # the class token stays first
        assert torch.equal(ref[2][:, 0], out[2][:, 0])  # embeddings output: class position untouched
    as_tuple = prompted(pixels, output_hidden_states=True, return_dict=False)
    assert as_tuple[0].shape == ref[0].shape and all(h.shape == ref[0].shape for h in as_tuple[2])


def test_prompts_and_adapters_together_keep_adapters_on_patch_tokens():
    model = tower("clip")
    pixels = torch.randn(4, 3, 24, 24)
    apply_adapters(model, {"kernel_size": [3, 3, 3]}, {"num_tokens": 2})
    adapters = [m for m in model.modules() if isinstance(m, STAdapter)]
    assert all(a.num_prefix == 1 + 2 for a in adapters)  # class token + prompts pass through
    perturb(model)
    assert outputs(model, pixels, 2)[0].shape == (4, 17, 32)


def test_weights_round_trip_through_the_state_dict():
    source = tower("siglip", seed=1)
    apply_adapters(source, {"layers": [-1]}, {"num_tokens": 4})
    perturb(source)
    target = tower("siglip", seed=2)
    apply_adapters(target, {"layers": [2]}, {"num_tokens": 4})
    target.load_state_dict(source.state_dict(), strict=True)
    pixels = torch.randn(4, 3, 24, 24)
    assert all(
        torch.equal(a, b) for a, b in zip(outputs(source, pixels, 2), outputs(target, pixels, 2), strict=True)
    )
    assert "encoder.layers.2.st_adapter.up.weight" in source.state_dict()


@pytest.mark.parametrize(
    ("adapter", "prompt", "message"),
    [
        ({"layers": [3]}, None, r"adapter.layers has 3, but the vision tower has 3 encoder layers"),
        ({"kernel_size": [2, 1, 1]}, None, r"adapter.kernel_size=\[2, 1, 1\] must be 3 odd sizes"),
        ({"type": "lora"}, None, r"adapter.type='lora' is not known; use one of st_adapter"),
        ({"width": 8}, None, r"adapter config has unknown field\(s\) \['width'\]"),
        (None, {"num_tokens": 0}, r"prompt.num_tokens=0 must be a positive integer"),
        (None, {"tokens": 4}, r"prompt config has unknown field\(s\) \['tokens'\]"),
    ],
)
def test_bad_configs_name_the_field(adapter, prompt, message):
    with pytest.raises(ValueError, match=message):
        apply_adapters(tower("clip"), adapter, prompt)


def test_unsupported_towers_and_second_calls_are_refused():
    with pytest.raises(ValueError, match="ViT-style transformers vision towers"):
        apply_adapters(nn.Sequential(nn.Linear(2, 2)), {}, None)
    model = tower("clip")
    apply_adapters(model, None, None)  # nothing asked: nothing inserted
    assert not any(isinstance(m, STAdapter) for m in model.modules())
    apply_adapters(model, {}, None)
    with pytest.raises(ValueError, match="already has adapters"):
        apply_adapters(model, {}, None)
