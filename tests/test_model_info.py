"""`videollm model info`: real-size presets against published counts, tiny checkpoints against real models."""

from __future__ import annotations

import json

import pytest
import torch

from videollm import cli as top_cli
from videollm.model import cli
from videollm.model.config import VideoLLMConfig
from videollm.model.info import PARTS, count_parameters, model_info, part_of, presets, read_config_dict
from videollm.model.modeling import VideoLLMForConditionalGeneration


@pytest.mark.parametrize("name", ["llava-onevision-0.5b", "llava-onevision-7b", "llava-next-video-7b"])
def test_presets_reproduce_the_published_parameter_counts(name):
    info = model_info(name, frames=[8])
    published = presets()[name]["published_params"]
    assert abs(info.total - published) / published < 0.01
    assert info.published_delta == pytest.approx((info.total - published) / published)


@pytest.mark.parametrize("name", ["llava-onevision-0.5b", "llava-next-video-7b"])
def test_presets_count_exactly_what_the_stock_transformers_model_has(name):
    import transformers

    config_dict = read_config_dict(name)
    stock_cls = getattr(transformers, config_dict["architectures"][0])
    stock_config = transformers.AutoConfig.for_model(**config_dict)
    with torch.device("meta"):
        stock = stock_cls(stock_config)
    stock_parts = dict.fromkeys(PARTS, 0)
    for param_name, param in stock.named_parameters():
        stock_parts[part_of(param_name)] += param.numel()
    info = model_info(name, frames=[8])
    assert {part: t + f for part, (t, f) in info.parts.items()} == stock_parts


def test_token_counts_match_the_stock_processors():
    onevision = model_info("llava-onevision-7b", frames=[1, 8, 32])
    assert onevision.grid == (27, 27)  # SigLIP 384/14
    # LlavaOnevisionProcessor: frames · ceil(27/2)² + 1 newline
    assert onevision.tokens == {1: (196, 197), 8: (1568, 1569), 32: (6272, 6273)}
    next_video = model_info("llava-next-video-7b", frames=[32, 64])
    # LlavaNextVideoProcessor: num_image_tokens // 4 · frames, no newline; Vicuna context 4096 × RoPE factor 2
    assert next_video.tokens == {32: (4608, 4608), 64: (9216, 9216)}
    assert next_video.context == 8192


def _tiny_vision(model_type: str) -> dict:
    """A 28-pixel tower with 7-pixel patches: a 4×4 grid per frame."""
    return {
        "model_type": model_type,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 28,
        "patch_size": 7,
    }


def _tiny_videollm_config(**overrides) -> VideoLLMConfig:
    return VideoLLMConfig(
        vision_config=_tiny_vision("siglip_vision_model"),
        text_config={
            "model_type": "qwen2",
            "hidden_size": 48,
            "intermediate_size": 96,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "vocab_size": 300,
            "max_position_embeddings": 64,
        },
        image_token_index=298,
        video_token_index=299,
        **overrides,
    )


def test_a_checkpoint_folder_counts_what_the_real_model_holds(tmp_path):
    config = _tiny_videollm_config(
        connector={"type": "resampler", "num_queries": 4, "per_frame": True},
        newline="frame",
        adapter={"layers": [1], "bottleneck": 8},
        prompt={"num_tokens": 3},
    )
    config.save_pretrained(tmp_path)
    info = model_info(str(tmp_path), frames=[2, 20], train=["connector", "adapters"])
    real = VideoLLMForConditionalGeneration(config)
    real_parts = {part: 0 for part in PARTS}
    for name, param in real.named_parameters():
        real_parts[part_of(name)] += param.numel()
    assert {part: t + f for part, (t, f) in info.parts.items()} == real_parts
    assert info.parts["connector"][0] > 0 and info.parts["adapters"][0] == 3 * 32 + (32 * 8 + 8) + (
        8 * 3 + 8
    ) + (8 * 32 + 32)
    assert info.parts["vision"][0] == 0 and info.parts["lm"][0] == 0  # frozen: counted on the right
    assert info.tokens == {2: (8, 10), 20: (80, 100)}  # 4 queries per frame + a newline per frame
    report = cli_output(["info", str(tmp_path), "--frames", "2", "20"])
    assert "resampler" in report and "over the context" in report  # 100 tokens > 64 positions


def test_no_source_describes_the_offline_default(tmp_path, monkeypatch):
    """`videollm model info` with no PATH describes the model serve/chat/eval default to ($VIDEOLLM_MODEL, else
    the starter: tests/test_starter_model.py)."""
    config = _tiny_videollm_config(connector={"type": "spatial_pool", "stride": 2})
    config.save_pretrained(tmp_path)
    monkeypatch.setenv("VIDEOLLM_MODEL", str(tmp_path))
    assert cli_output(["info", "--frames", "4"]) == cli_output(["info", str(tmp_path), "--frames", "4"])
    assert "spatial_pool" in cli_output(["info", "--frames", "4"])


def test_an_image_llava_folder_reads_as_its_default_video_model(tmp_path):
    from transformers import LlavaConfig

    LlavaConfig(
        vision_config=_tiny_vision("clip_vision_model"),
        text_config={
            "model_type": "llama",
            "hidden_size": 48,
            "num_attention_heads": 4,
            "num_hidden_layers": 1,
        },
    ).save_pretrained(tmp_path)
    info = model_info(str(tmp_path / "config.json"), frames=[4])
    assert info.connector["type"] == "spatial_pool" and info.newline == "video"
    assert info.tokens == {4: (4 * 2 * 2, 4 * 2 * 2 + 1)}  # 4×4 grid pooled to 2×2


def cli_output(argv: list[str]) -> str:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert cli.main(argv) == 0
    return buffer.getvalue()


def test_cli_prints_ours_next_to_the_published_count(capsys):
    assert top_cli.main(["model", "info", "llava-next-video-7b", "--frames", "8", "64"]) == 0
    out = capsys.readouterr().out
    assert "7,063,431,168" in out and "7,060,000,000" in out and "+0.05%" in out
    assert "LM context 8,192" in out and "over the context" in out
    data = json.loads(
        cli_output(["info", "llava-onevision-0.5b", "--frames", "16", "--json", "--train", "projector"])
    )
    assert data["parameters"]["projector"] == {"trainable": 1837696, "frozen": 0}
    assert data["parameters"]["vision"]["trainable"] == 0 and data["total"] == 893675552
    assert data["tokens"] == {"16": {"connector": 3136, "video": 3137}}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["info", "/nonexistent/model"], "no such file or folder"),
        (["info", "llava-onevision-0.5b", "--frames", "0"], "frame counts ≥ 1"),
    ],
)
def test_cli_errors_say_what_to_give(argv, message, capsys):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_unknown_configs_and_parts_are_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="model_type 'bert' is not a video model"):
        model_info(str(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"folder without a config\.json"):
        model_info(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="unknown part"):
        count_parameters(torch.nn.Linear(1, 1), train=["decoder"])
