"""Connectors: token counts, the anchors' definitions, and equivalence with transformers' own pooling."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import LlavaNextVideoConfig, LlavaOnevisionConfig, LlavaOnevisionModel
from transformers.models.llava_next_video.modeling_llava_next_video import LlavaNextVideoPooler

from videollm.model.connectors import (
    DEFAULT,
    PRESETS,
    TYPES,
    ConnectorConfig,
    build_connector,
    merge_tokens,
    num_tokens,
    pool2d,
)

VISION_DIM, TEXT_DIM = 12, 8


@st.composite
def connector_configs(draw) -> ConnectorConfig:
    kind = draw(st.sampled_from(TYPES))
    kw: dict = {"type": kind, "stage": draw(st.sampled_from(["pre", "post"]))}
    kw["temporal_embed"] = draw(st.sampled_from([None, "learned", "sinusoidal"]))
    if kind in ("spatial_pool", "slowfast"):
        kw["mode"] = draw(st.sampled_from(["avg", "max", "bilinear"]))
        kw["stride"] = draw(st.integers(1, 4))
    if kind == "slowfast":
        kw["slow_every"] = draw(st.integers(1, 4))
        kw["fast_stride"] = draw(st.integers(1, 5))
    if kind == "pool3d":
        kw.update(t=draw(st.integers(1, 8)), h=draw(st.integers(1, 8)), w=draw(st.integers(1, 8)))
    if kind == "resampler":
        kw.update(num_queries=draw(st.integers(1, 5)), per_frame=draw(st.booleans()), num_layers=1)
    if kind == "token_merge":
        kw["budget"] = draw(st.integers(1, 60))
    return ConnectorConfig(**kw)


@settings(max_examples=150, deadline=None)
@given(cfg=connector_configs(), T=st.integers(1, 7), h=st.integers(1, 7), w=st.integers(1, 7))
def test_module_emits_exactly_num_tokens(cfg, T, h, w):
    connector = build_connector(cfg, VISION_DIM, TEXT_DIM)
    dim = VISION_DIM if cfg.stage == "pre" else TEXT_DIM
    assert connector.stage == cfg.stage and connector.dim == dim
    out = connector(torch.randn(T, h, w, dim), timestamps=torch.linspace(0, 3, T))
    assert out.shape == (num_tokens(cfg, T, h, w), dim)
    assert connector.num_tokens(T, h, w) == out.shape[0]
    assert torch.isfinite(out).all()


def test_num_tokens_formulas_at_real_sizes():
    # SigLIP-384/14: 27×27 grid; CLIP-336/14: 24×24
    assert num_tokens(DEFAULT, 32, 27, 27) == 32 * 14 * 14
    assert num_tokens(PRESETS["llava-next-video"], 32, 24, 24) == 32 * 12 * 12
    assert num_tokens(PRESETS["video-llava"], 8, 16, 16) == 8 * 256
    assert num_tokens(PRESETS["video-chatgpt"], 100, 16, 16) == 100 + 256
    assert num_tokens(PRESETS["pllava"], 16, 24, 24) == 16 * 12 * 12
    assert num_tokens(PRESETS["pllava"], 4, 24, 24) == 4 * 12 * 12  # never upsamples time
    # LLaVA-Video, 64 frames, every 10th slow: 7 slow frames at 14×14, 57 fast at 7×7
    assert num_tokens(PRESETS["llava-video"], 64, 27, 27) == 7 * 196 + 57 * 49
    assert num_tokens(PRESETS["qformer"], 64, 27, 27) == 32
    assert num_tokens(PRESETS["llama-vid"], 64, 27, 27) == 128
    assert num_tokens(PRESETS["chat-univi"], 64, 27, 27) == 256
    assert num_tokens(PRESETS["chat-univi"], 1, 8, 8) == 64
    with pytest.raises(ValueError, match="num_frames=0"):
        num_tokens(DEFAULT, 0, 27, 27)


# ---- equivalence with transformers' own code -------------------------------------------------


@functools.lru_cache
def _onevision(grid: int) -> LlavaOnevisionModel:
    """A tiny real LLaVA-OneVision whose SigLIP has a grid×grid patch grid."""
    config = LlavaOnevisionConfig(
        vision_config={
            "model_type": "siglip_vision_model",
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "patch_size": 2,
            "image_size": 2 * grid,
        },
        text_config={
            "model_type": "qwen2",
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "vocab_size": 64,
        },
    )
    return LlavaOnevisionModel(config).eval()


@settings(max_examples=40, deadline=None)
@given(grid=st.integers(1, 13), T=st.integers(1, 4), dim=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_default_equals_llava_onevision_apply_pooling(grid, T, dim, seed):
    x = torch.randn(T, grid, grid, dim, generator=torch.Generator().manual_seed(seed))
    ours = build_connector(DEFAULT, VISION_DIM, dim)(x)
    theirs = _onevision(grid).apply_pooling(x.reshape(T, grid * grid, dim)).reshape(-1, dim)
    assert torch.equal(ours, theirs)


def _next_video_pooler(grid: int, stride: int, mode: str) -> LlavaNextVideoPooler:
    config = LlavaNextVideoConfig(
        vision_config={
            "model_type": "clip_vision_model",
            "hidden_size": 16,
            "num_attention_heads": 2,
            "patch_size": 2,
            "image_size": 2 * grid,
        },
        text_config={"model_type": "llama", "hidden_size": 16, "num_attention_heads": 2, "vocab_size": 64},
        spatial_pool_mode=mode,
        spatial_pool_stride=stride,
    )
    return LlavaNextVideoPooler(config)


@settings(max_examples=40, deadline=None)
@given(
    cells=st.integers(1, 6),
    stride=st.integers(2, 3),
    mode=st.sampled_from(["average", "max"]),
    T=st.integers(1, 4),
    dim=st.integers(1, 9),
    seed=st.integers(0, 2**16),
)
def test_avg_pre_projector_equals_llava_next_video_pooler(cells, stride, mode, T, dim, seed):
    grid = cells * stride  # the stock pooler floors; on divisible grids both agree exactly
    x = torch.randn(T, grid, grid, dim, generator=torch.Generator().manual_seed(seed))
    cfg = ConnectorConfig(type="spatial_pool", mode=mode, stride=stride, stage="pre")
    ours = build_connector(cfg, dim, TEXT_DIM)(x)
    theirs = _next_video_pooler(grid, stride, mode)(x.reshape(T, grid * grid, dim)).reshape(-1, dim)
    assert torch.equal(ours, theirs)


def test_avg_pool_keeps_the_border_of_odd_grids():
    x = torch.randn(1, 3, 3, 4)
    y = pool2d(x, "avg", 2)
    assert y.shape == (1, 2, 2, 4)
    torch.testing.assert_close(y[0, 0, 0], x[0, :2, :2].mean(dim=(0, 1)))
    torch.testing.assert_close(y[0, 0, 1], x[0, :2, 2].mean(dim=0))
    torch.testing.assert_close(y[0, 1, 1], x[0, 2, 2])


# ---- the anchors' definitions ----------------------------------------------------------------


def test_frames_keeps_every_token_in_frame_order():
    x = torch.randn(3, 2, 4, TEXT_DIM)
    out = build_connector(PRESETS["video-llava"], VISION_DIM, TEXT_DIM)(x)
    assert torch.equal(out, x.reshape(-1, TEXT_DIM))


def test_spatiotemporal_pool_is_video_chatgpt():
    x = torch.randn(5, 3, 4, VISION_DIM)
    out = build_connector(PRESETS["video-chatgpt"], VISION_DIM, TEXT_DIM)(x)
    torch.testing.assert_close(out[:5], x.mean(dim=(1, 2)))  # one temporal token per frame
    torch.testing.assert_close(out[5:], x.mean(dim=0).reshape(12, VISION_DIM))  # one spatial token per patch


def test_pool3d_averages_blocks_and_never_upsamples():
    x = torch.randn(4, 4, 6, TEXT_DIM)
    out = build_connector(ConnectorConfig(type="pool3d", t=2, h=2, w=3), VISION_DIM, TEXT_DIM)(x)
    blocks = x.reshape(2, 2, 2, 2, 3, 2, TEXT_DIM).mean(dim=(1, 3, 5))
    torch.testing.assert_close(out, blocks.reshape(-1, TEXT_DIM))
    small = torch.randn(2, 3, 3, TEXT_DIM)
    out = build_connector(PRESETS["pllava"], VISION_DIM, TEXT_DIM)(small)  # 16×12×12 target
    assert torch.equal(out, small.reshape(-1, TEXT_DIM))


def test_slowfast_pools_every_kth_frame_lightly_in_frame_order():
    cfg = ConnectorConfig(type="slowfast", mode="bilinear", stride=2, slow_every=2, fast_stride=4)
    x = torch.randn(5, 8, 8, TEXT_DIM)
    out = build_connector(cfg, VISION_DIM, TEXT_DIM)(x)
    expected = []
    for i in range(5):  # LLaVA-NeXT get_2dPool: bilinear to ceil(h/s)×ceil(w/s)
        s = 2 if i % 2 == 0 else 4
        frame = F.interpolate(x[i : i + 1].permute(0, 3, 1, 2), size=(8 // s, 8 // s), mode="bilinear")
        expected.append(frame.permute(0, 2, 3, 1).reshape(-1, TEXT_DIM))
    assert torch.equal(out, torch.cat(expected))
    assert out.shape[0] == 3 * 16 + 2 * 4


def test_resampler_reads_all_frames_or_each_frame_and_trains():
    video = build_connector(ConnectorConfig(type="resampler", num_queries=3), VISION_DIM, TEXT_DIM)
    per_frame = build_connector(
        ConnectorConfig(type="resampler", num_queries=3, per_frame=True), VISION_DIM, TEXT_DIM
    )
    x = torch.randn(4, 3, 3, VISION_DIM)
    assert video(x).shape == (3, VISION_DIM)
    out = per_frame(x)
    assert out.shape == (12, VISION_DIM)
    # per frame: frame i's tokens depend on frame i only
    x2 = x.clone()
    x2[1] += 1.0
    out2 = per_frame(x2)
    assert (
        torch.equal(out[:3], out2[:3])
        and torch.equal(out[6:], out2[6:])
        and not torch.equal(out[3:6], out2[3:6])
    )
    video(x).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in video.parameters())


def test_temporal_embedding_starts_at_zero_and_then_makes_order_visible():
    base = build_connector(ConnectorConfig(type="resampler", num_queries=2), VISION_DIM, TEXT_DIM)
    timed = build_connector(
        ConnectorConfig(type="resampler", num_queries=2, temporal_embed="learned"), VISION_DIM, TEXT_DIM
    )
    timed.load_state_dict(base.state_dict(), strict=False)
    x = torch.randn(4, 2, 2, VISION_DIM)
    reversed_x = x.flip(0)
    assert torch.equal(base(x), timed(x))  # zero-initialised: nothing changes at step 0
    torch.testing.assert_close(base(x), base(reversed_x))  # without it, a per-video resampler is order-blind
    with torch.no_grad():
        timed.temporal.embedding.normal_()
    assert not torch.allclose(timed(x), timed(reversed_x), atol=1e-3)
    with pytest.raises(ValueError, match="max_frames"):
        timed(torch.randn(65, 1, 1, VISION_DIM))


def test_sinusoidal_time_embedding_uses_timestamps():
    cfg = ConnectorConfig(type="frames", temporal_embed="sinusoidal")
    connector = build_connector(cfg, VISION_DIM, TEXT_DIM)
    x = torch.randn(3, 2, 2, TEXT_DIM)
    assert torch.equal(
        connector(x, torch.tensor([0.0, 1.0, 2.0])), x.reshape(-1, TEXT_DIM)
    )  # gate starts at 0
    with torch.no_grad():
        connector.temporal.gate.fill_(1.0)
    early, late = connector(x, torch.tensor([0.0, 1.0, 2.0])), connector(x, torch.tensor([5.0, 6.0, 7.0]))
    assert not torch.allclose(early, late)
    with pytest.raises(ValueError, match="one time per frame"):
        connector(x, torch.tensor([0.0, 1.0]))


def test_token_merge_merges_repeated_frames_first_keeps_order_and_is_differentiable():
    frame = torch.randn(1, 12, VISION_DIM)
    for T in (2, 3, 5):  # a static video: T copies of the same frame collapse back to that frame
        out = merge_tokens(frame.expand(T, -1, -1).clone(), budget=12)
        assert torch.equal(out, frame[0])
    x = torch.randn(4, 3, 3, VISION_DIM, requires_grad=True)
    connector = build_connector(ConnectorConfig(type="token_merge", budget=10), VISION_DIM, TEXT_DIM)
    out = connector(x)
    assert out.shape == (10, VISION_DIM) and torch.equal(out, connector(x))  # deterministic
    out.sum().backward()
    assert (x.grad != 0).all()  # every input token contributes to exactly one output token
    few = torch.randn(1, 2, 2, VISION_DIM)
    assert torch.equal(connector(few), few.reshape(-1, VISION_DIM))  # under budget: untouched


# ---- config and errors -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_config_round_trips_through_a_plain_dict(name):
    cfg = PRESETS[name]
    d = cfg.to_dict()
    assert ConnectorConfig.from_dict(d) == cfg
    assert set(d) <= {f for f in ConnectorConfig.__dataclass_fields__}


def test_default_is_llava_onevision():
    assert ConnectorConfig() == DEFAULT
    assert DEFAULT.to_dict() == {
        "type": "spatial_pool",
        "stage": "post",
        "mode": "bilinear",
        "stride": 2,
        "temporal_embed": None,
    }
    assert ConnectorConfig.from_dict(None) == DEFAULT
    assert ConnectorConfig(mode="average").mode == "avg"  # LLaVA-NeXT-Video's spelling


@pytest.mark.parametrize(
    ("d", "message"),
    [
        ({"type": "pooling"}, r"connector.type='pooling' is invalid: use one of frames, spatial_pool"),
        ({"mode": "median"}, r"connector.mode='median'.*avg, max, bilinear"),
        ({"stride": 0}, r"connector.stride=0.*positive integer"),
        ({"stage": "middle"}, r"connector.stage='middle'.*'pre'"),
        ({"temporal_embed": "rope"}, r"connector.temporal_embed='rope'"),
        ({"strides": 2}, r"unknown field\(s\) \['strides'\]"),
    ],
)
def test_bad_configs_name_the_field_and_the_fix(d, message):
    with pytest.raises(ValueError, match=message):
        ConnectorConfig.from_dict(d)


def test_bad_input_shapes_say_what_is_expected():
    connector = build_connector(DEFAULT, VISION_DIM, TEXT_DIM)
    with pytest.raises(ValueError, match=r"T×h×w×8.*got shape \(4, 3, 3, 12\)"):
        connector(torch.randn(4, 3, 3, VISION_DIM))  # vision features into a post-projector connector
    with pytest.raises(ValueError, match="T, h, w ≥ 1"):
        connector(torch.randn(0, 3, 3, TEXT_DIM))
    with pytest.raises(ValueError, match="num_heads=5 does not divide"):
        build_connector(ConnectorConfig(type="resampler", num_heads=5), VISION_DIM, TEXT_DIM)


def test_reset_parameters_spares_weights_loaded_from_a_checkpoint():
    connector = build_connector(ConnectorConfig(type="resampler", num_queries=2), VISION_DIM, TEXT_DIM)
    loaded = torch.full_like(connector.queries, 3.0)
    with torch.no_grad():
        connector.queries.copy_(loaded)
        connector.layers[0].q_proj.weight.zero_()
    connector.queries._is_hf_initialized = True  # what transformers marks on tensors it loaded
    connector.reset_parameters()
    assert torch.equal(connector.queries, loaded)
    assert connector.layers[0].q_proj.weight.abs().sum() > 0  # not loaded: initialised again
