"""Ladder side-tuning (`side`): a side network on the frozen encoder of real tiny video models."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from videollm.model import VideoLLMForConditionalGeneration, tiny
from videollm.model.config import VideoLLMConfig
from videollm.model.side import SideNetwork, frame_positions
from videollm.train.recipe import Recipe
from videollm.train.strategies import apply_strategy, param_group

SIDE = {"heads": 2, "stride": 2}


def features(model, pixels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.get_video_features(pixels).pooler_output


def perturb(model) -> None:
    """Give the zero-initialised output projection non-zero weights, as training would."""
    torch.manual_seed(3)
    with torch.no_grad():
        model.model.side.out.weight.normal_(std=0.5)


@pytest.mark.parametrize(("vision", "side"), [("clip", SIDE), ("siglip", {"layers": [0, 1, -1], "dim": 8})])
def test_side_network_leaves_the_image_model_unchanged_at_step_zero(vision, side):
    model, _ = tiny("frames", vision, side=side)
    pixels = torch.randn(2, 3, 3, 32, 32)
    with_side = features(model, pixels)
    network, model.model.side = model.model.side, None
    assert torch.equal(with_side, features(model, pixels))
    model.model.side = network
    perturb(model)
    assert not torch.allclose(with_side, features(model, pixels))


def test_side_network_reads_the_chosen_depths():
    clip, _ = tiny("frames", "clip", side=SIDE)
    assert clip.model.side.layers == (1,)  # up to CLIP's feature layer -2 of 2 blocks (vLLM drops the rest)
    siglip, _ = tiny("frames", "siglip", side={"layers": [0, -1, 2]})
    assert siglip.model.side.layers == (0, 2)


def test_side_network_models_time_within_each_video():
    model, _ = tiny("frames", "siglip", side=SIDE)
    perturb(model)
    pixels = torch.randn(2, 3, 3, 32, 32)
    changed = pixels.clone()
    changed[0, 2] += 1.0  # last frame of the first video
    base, new = features(model, pixels), features(model, changed)
    tokens = base.shape[1] // 3
    assert not torch.allclose(base[0, :tokens], new[0, :tokens])  # the first frame sees it
    assert torch.equal(base[1], new[1])  # the other video does not


def test_no_gradient_reaches_the_frozen_encoder_and_it_keeps_no_activations():
    model, _ = tiny("spatial_pool", "clip", side=SIDE)
    model = apply_strategy(model.train(), Recipe(strategy="side", side=SIDE))
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("model.side.") for n in trained)
    assert all(param_group(n) == "projector" for n in trained)
    seen = []
    model.model.vision_tower.register_forward_hook(
        lambda module, args, out: seen.append(any(h.requires_grad for h in out.hidden_states))
    )
    pixels = torch.randn(1, 3, 3, 32, 32)
    model.get_video_features(pixels).pooler_output.square().sum().backward()
    assert seen == [False]  # the encoder ran without autograd: no activations kept for backward
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(grads[n] is None for n in grads if ".vision_tower." in n)
    assert grads["model.side.out.weight"].abs().sum() > 0  # the zero-init output learns first
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1).step()
    model.zero_grad()
    model.get_video_features(pixels).pooler_output.square().sum().backward()
    assert model.model.side.laterals[0][1].weight.grad.abs().sum() > 0  # then the whole ladder
    assert all(p.grad is None for p in model.model.vision_tower.parameters())


def test_side_strategy_adds_the_network_to_a_plain_model_and_refuses_a_different_one():
    model, _ = tiny("spatial_pool", "siglip")
    model = apply_strategy(model, Recipe(strategy="side", side=SIDE))
    assert isinstance(model.model.side, SideNetwork) and model.config.side == SIDE
    pixels = torch.randn(1, 2, 3, 32, 32)
    plain, _ = tiny("spatial_pool", "siglip")
    assert torch.equal(features(model, pixels), features(plain, pixels))  # zero-init: unchanged
    with pytest.raises(ValueError, match=r"already has side .* drop `side:` from the recipe"):
        apply_strategy(model, Recipe(strategy="side", side={"stride": 1}))


def test_video_model_with_side_round_trips(tmp_path):
    model, _ = tiny("pool3d", "clip", side=SIDE)
    perturb(model)
    pixels = torch.randn(1, 4, 3, 32, 32)
    expected = features(model, pixels)
    model.save_pretrained(tmp_path)
    config = VideoLLMConfig.from_pretrained(tmp_path)
    assert config.side == SIDE and not config.is_onevision
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        keys = set(f.keys())
    assert "side.out.weight" in keys and "side.temporal.0.self_attn.in_proj_weight" in keys
    loaded, info = VideoLLMForConditionalGeneration.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert torch.equal(features(loaded, pixels), expected)


def test_frame_positions_distinguish_any_number_of_frames():
    table = frame_positions(40, 6, torch.device("cpu"), torch.float32)
    assert table.shape == (40, 6) and len({tuple(row.tolist()) for row in table}) == 40


@pytest.mark.parametrize(
    ("side", "message"),
    [
        ({"layers": [3]}, r"side.layers has 3, but the vision tower has 3 hidden states"),
        ({"layers": [-1]}, r"side.layers has -1 \(hidden state 2\), deeper than the feature layer -2"),
        ({"dim": 6, "heads": 4}, r"side.dim=6 must be a positive multiple of side.heads=4"),
        ({"stride": 0}, r"side.stride=0 must be a positive integer"),
        ({"width": 8}, r"side config has unknown field\(s\) \['width'\]"),
        ({"layers": []}, r"side.layers is empty"),
    ],
)
def test_bad_side_configs_name_the_field(side, message):
    with pytest.raises(ValueError, match=message):
        tiny("frames", "clip", side=side)


@pytest.mark.slow
def test_vllm_plugin_runs_the_side_network_as_transformers_does(tmp_path):
    from serving import save_tiny
    from test_mamba import assert_engines_agree

    model_dir = save_tiny(tmp_path / "side", "spatiotemporal_pool", side={"layers": [0, 1, 2], **SIDE})
    assert_engines_agree(model_dir, tmp_path)


def test_a_side_run_trains_the_side_network_and_projector_only(tmp_path):
    """A real training run (`videollm.train.trainer.train`, synthetic world) with `strategy: side`."""
    from trainkit import render_world, run_diff, save_tiny_base

    world, base = render_world(tmp_path / "world", num_videos=2), save_tiny_base(tmp_path / "base")
    run = run_diff(world, base, tmp_path / "run", strategy="side", side=SIDE)
    assert run.model.config.side == SIDE
    assert run.added == {n for n in run.after if n.startswith("model.side.")}
    # projector/newline: no encoder, no LM
    assert run.changed and {param_group(n) for n in run.changed} == {"projector"}
    assert run.after["model.side.out.weight"].abs().sum() > 0  # the zero-initialised output learned
    assert run.result.trainable["vision"][0] == 0 and run.result.trainable["lm"][0] == 0
