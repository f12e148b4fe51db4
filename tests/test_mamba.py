"""The Mamba temporal adapter (MoMa-style) inside real tiny CLIP/SigLIP towers and tiny video models."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from test_adapters import outputs, tower

from videollm.model import VideoLLMForConditionalGeneration, tiny
from videollm.model.adapters import adapter_parameters, apply_adapters, frames_per_video
from videollm.model.mamba import MambaAdapter, selective_scan
from videollm.train.recipe import Recipe
from videollm.train.strategies import apply_strategy, param_group

MAMBA = {"type": "mamba", "bottleneck": 8, "state_size": 4}


def naive_scan(u, delta, A, B, C, D, z, delta_bias):
    """The selective SSM written out element by element (Gu & Dao 2023, Algorithm 2), no vectorisation."""
    batch, channels, length = u.shape
    y = torch.zeros_like(u)
    for b in range(batch):
        for d in range(channels):
            h = torch.zeros(A.shape[1], dtype=torch.float64)
            for t in range(length):
                dt = F.softplus(delta[b, d, t] + delta_bias[d])
                h = torch.exp(dt * A[d]) * h + dt * B[b, :, t] * u[b, d, t]
                out = (h * C[b, :, t]).sum() + D[d] * u[b, d, t]
                y[b, d, t] = out * F.silu(z[b, d, t])
    return y


def test_selective_scan_matches_the_naive_loop():
    torch.manual_seed(0)
    batch, channels, state, length = 2, 3, 4, 6
    u, delta, z = (torch.randn(batch, channels, length) for _ in range(3))
    A = -torch.rand(channels, state) * 2
    B, C = torch.randn(batch, state, length), torch.randn(batch, state, length)
    D, bias = torch.randn(channels), torch.randn(channels)
    fast = selective_scan(u, delta, A, B, C, D, z, delta_bias=bias, delta_softplus=True)
    assert fast.shape == u.shape and fast.dtype == torch.float32
    reference = naive_scan(*(t.double() for t in (u, delta, A, B, C, D, z, bias)))
    torch.testing.assert_close(fast.double(), reference, rtol=1e-5, atol=1e-5)
    # causal: the first steps do not see later inputs
    later = u.clone()
    later[..., 4:] += 1.0
    changed = selective_scan(later, delta, A, B, C, D, z, delta_bias=bias, delta_softplus=True)
    assert torch.equal(changed[..., :4], fast[..., :4]) and not torch.equal(changed[..., 4:], fast[..., 4:])


def perturb(model: torch.nn.Module) -> None:
    """Give the zero-initialised modulation non-zero weights, as training would."""
    torch.manual_seed(3)
    with torch.no_grad():
        for adapter in (m for m in model.modules() if isinstance(m, MambaAdapter)):
            adapter.modulation.weight.normal_(std=0.5)


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_mamba_adapter_leaves_the_image_model_unchanged_at_step_zero(kind):
    model = tower(kind)
    pixels = torch.randn(6, 3, 24, 24)  # 2 videos × 3 frames
    before = outputs(model, pixels, frames=3)
    apply_adapters(model, MAMBA, {"num_tokens": 2} if kind == "clip" else None)
    if kind == "clip":  # prompts change the features by themselves: compare against prompts alone
        plain = tower(kind)
        apply_adapters(plain, None, {"num_tokens": 2})
        plain.load_state_dict(model.state_dict(), strict=False)
        before = outputs(plain, pixels, frames=3)
    assert sum(isinstance(m, MambaAdapter) for m in model.modules()) == 3
    after = outputs(model, pixels, frames=3)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_the_scan_runs_over_the_frames_of_a_video_both_ways():
    model = tower("siglip")
    apply_adapters(model, {**MAMBA, "layers": [0]}, None)
    perturb(model)
    pixels = torch.randn(6, 3, 24, 24)
    for frame, neighbour in ((2, 0), (0, 2)):  # last frame reaches the first, and the other way round
        changed = pixels.clone()
        changed[frame] += 1.0
        base, new = outputs(model, pixels, 3)[0], outputs(model, changed, 3)[0]
        assert not torch.allclose(base[neighbour], new[neighbour])
        assert torch.equal(base[3:], new[3:])  # the other video does not see it
    single = pixels.clone()
    single[2] += 1.0
    assert torch.equal(outputs(model, pixels, 1)[0][0], outputs(model, single, 1)[0][0])  # images stay images


def test_only_the_adapter_trains_and_its_modulation_learns_first():
    model = tower("clip")
    apply_adapters(model, {**MAMBA, "layers": [1]}, None)
    trainable = dict(adapter_parameters(model))
    assert {n.split(".mamba_adapter.")[1] for n in trainable} == {
        "A_log",
        "D",
        "norm.weight",
        "norm.bias",
        "in_proj.weight",
        "in_proj.bias",
        "conv1d.weight",
        "conv1d.bias",
        "x_proj.weight",
        "dt_proj.weight",
        "dt_proj.bias",
        "modulation.weight",
        "modulation.bias",
    }
    for name, param in model.named_parameters():
        param.requires_grad_(name in trainable)
    with frames_per_video(model, 2):
        model(torch.randn(4, 3, 24, 24)).last_hidden_state.square().sum().backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(grads[n] is None for n in grads if n not in trainable)
    assert grads["encoder.layers.1.mamba_adapter.modulation.weight"].abs().sum() > 0
    assert grads["encoder.layers.1.mamba_adapter.in_proj.weight"].abs().sum() == 0  # behind the zero output


def test_bad_mamba_configs_name_the_field():
    with pytest.raises(ValueError, match=r"adapter.state_size=0 must be a positive integer"):
        apply_adapters(tower("clip"), {"type": "mamba", "state_size": 0}, None)
    with pytest.raises(ValueError, match=r"adapter.type='s4' is not known; use one of st_adapter, mamba"):
        apply_adapters(tower("clip"), {"type": "s4"}, None)


def test_video_model_with_mamba_round_trips_and_trains_under_the_adapter_strategy(tmp_path):
    model, _ = tiny("spatial_pool", "siglip", adapter=MAMBA)
    perturb(model)
    pixels = torch.randn(1, 3, 3, 32, 32)
    with torch.no_grad():
        expected = model.get_video_features(pixels).pooler_output
    model.save_pretrained(tmp_path)
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        keys = set(f.keys())
    assert "vision_tower.vision_model.encoder.layers.1.mamba_adapter.modulation.weight" in keys
    loaded, info = VideoLLMForConditionalGeneration.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert loaded.config.adapter == model.config.adapter
    with torch.no_grad():
        assert torch.equal(loaded.get_video_features(pixels).pooler_output, expected)

    loaded = apply_strategy(loaded.train(), Recipe(strategy="adapter", adapter=MAMBA))
    trained = {n for n, p in loaded.named_parameters() if p.requires_grad}
    assert {n for n in trained if "vision_tower" in n} == {
        n for n in trained if ".mamba_adapter." in n
    } and all(param_group(n) == "projector" for n in trained)
    assert any(".mamba_adapter." in n for n in trained)


def test_a_mamba_adapter_run_trains_the_adapters_and_projector_only(tmp_path):
    """A real training run (`videollm.train.trainer.train`, synthetic world): `strategy: adapter`, `type: mamba`."""
    from trainkit import render_world, run_diff, save_tiny_base

    world, base = render_world(tmp_path / "world", num_videos=2), save_tiny_base(tmp_path / "base")
    run = run_diff(world, base, tmp_path / "run", strategy="adapter", adapter=MAMBA)
    assert run.model.config.adapter == MAMBA
    assert run.added == {n for n in run.after if ".mamba_adapter." in n}
    # the tower's own weights untouched
    assert run.changed and {param_group(n) for n in run.changed} == {"projector"}
    # CLIP's features come from the penultimate layer: the first block's adapter gets gradient and learns
    assert run.after["model.vision_tower.encoder.layers.0.mamba_adapter.modulation.weight"].abs().sum() > 0
    assert run.result.trainable["vision"][0] == 0 and run.result.trainable["lm"][0] == 0


def test_vllm_tower_gets_the_adapters_of_the_blocks_it_runs():
    """vLLM keeps the blocks up to the feature layer; adapter indices still count from the full tower."""
    from videollm.inference.vllm_video_modules import loaded_adapter_spec

    assert loaded_adapter_spec({**MAMBA, "layers": [-1, 0]}, total=3, loaded=2)["layers"] == [0]
    assert loaded_adapter_spec(MAMBA | {"layers": None}, total=3, loaded=2)["layers"] == [0, 1]
    with pytest.raises(ValueError, match=r"adapter.layers has 5, but the vision tower has 3 encoder layers"):
        loaded_adapter_spec({**MAMBA, "layers": [5]}, total=3, loaded=3)


def assert_engines_agree(model_dir, tmp_path) -> None:
    """vLLM (videollm's plugin, offline engine) and transformers: same prompts and greedy tokens, fp32.

    Two videos of different lengths go through vLLM in one batch: each video's frames are scanned on their own.
    """
    from serving import write_clip
    from test_serve_vllm import QUESTION, assert_same_greedy, transformers_tokens
    from vllm import SamplingParams

    from videollm.inference.engine import GenerationRequest
    from videollm.inference.vllm_engine import VLLMEngine
    from videollm.video.sampling import FrameSampler

    clip = write_clip(tmp_path / "clip.mp4")
    frame_counts = (3, 6)
    engine = VLLMEngine(
        model_dir,
        dtype="float32",
        enforce_eager=True,
        max_model_len=2048,
        backend="pyav",
        kv_cache_memory_bytes=1 << 28,  # a fixed small KV cache, not a share of this shared machine's memory
    )
    try:
        prompts = [
            engine.vllm_prompt(GenerationRequest(QUESTION, video=clip, sampler=FrameSampler.uniform(n)))
            for n in frame_counts
        ]
        outs = engine.llm.generate(
            prompts, SamplingParams(max_tokens=8, temperature=0, logprobs=2), use_tqdm=False
        )
    finally:
        del engine
    for n, out in zip(frame_counts, outs, strict=True):
        steps = [sorted(lp.values(), key=lambda x: -x.logprob) for lp in out.outputs[0].logprobs]
        margins = [s[0].logprob - s[1].logprob for s in steps]
        ref_prompt, ref_tokens = transformers_tokens(model_dir, clip, frames=n, max_tokens=8)
        assert list(out.prompt_token_ids) == ref_prompt
        assert_same_greedy(list(out.outputs[0].token_ids), ref_tokens, margins)


@pytest.mark.slow
@pytest.mark.parametrize("adapter", [MAMBA, {"type": "st_adapter", "layers": [-1], "kernel_size": [3, 3, 3]}])
def test_vllm_plugin_runs_temporal_adapters_as_transformers_does(tmp_path, adapter):
    from serving import save_tiny

    model_dir = save_tiny(tmp_path / "adapter", "spatiotemporal_pool", adapter=adapter)
    assert_engines_agree(model_dir, tmp_path)
