"""`tiny` over every connector × tower × LM, and `from_image_llm` from each kind of image checkpoint."""

from __future__ import annotations

import pytest
import torch
from conftest import random_clip
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    CLIPVisionModel,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaNextConfig,
    LlavaNextForConditionalGeneration,
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    LlavaProcessor,
    Qwen2Config,
    Qwen2ForCausalLM,
    SiglipImageProcessorPil,
    SiglipVisionConfig,
    SiglipVisionModel,
)

from videollm.model import from_image_llm, tiny, video_num_tokens
from videollm.model.connectors import TYPES
from videollm.model.tokenizer import tiny_tokenizer

PROMPT = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Describe."}]}]
TOWER = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
TOWER |= {"image_size": 32, "patch_size": 8}


def _forward(model, processor, frames=3):
    text = processor.apply_chat_template(PROMPT, add_generation_prompt=True)
    inputs = processor(text=text, videos=[random_clip(frames)], return_tensors="pt")
    placeholders = int((inputs["input_ids"] == model.config.video_token_index).sum())
    assert placeholders == video_num_tokens(model.config, frames)
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (1, inputs["input_ids"].shape[1], model.config.text_config.vocab_size)
    assert torch.isfinite(logits).all()
    return inputs


@pytest.mark.parametrize("lm", ["llama", "qwen2"])
@pytest.mark.parametrize("vision", ["clip", "siglip"])
@pytest.mark.parametrize("connector", TYPES)
def test_tiny_builds_and_runs_every_combination(connector, vision, lm):
    model, processor = tiny(connector, vision, lm)
    assert model.config.connector["type"] == connector
    assert model.config.vision_config.model_type == f"{vision}_vision_model"
    assert model.config.text_config.model_type == lm
    assert sum(p.numel() for p in model.parameters()) < 500_000
    _forward(model, processor)


def test_tiny_takes_a_corpus_trained_tokenizer(tmp_path):
    """Words of the corpus become single tokens; other text still round-trips byte by byte; the model is sized to it."""
    corpus = ["What is the color of the triangle?", "The triangle is red.", "The circle is blue."] * 50
    tokenizer = tiny_tokenizer(corpus=corpus, vocab_size=400)
    assert tokenizer.tokenize("The triangle is red.") == ["The", "Ġtriangle", "Ġis", "Ġred", "."]
    text = "Zebra-42 ünïcode"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    model, processor = tiny("frames", tokenizer=tokenizer)
    assert model.config.text_config.vocab_size == len(tokenizer) > len(tiny_tokenizer())
    _forward(model, processor)
    processor.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(tmp_path).tokenize("The triangle") == ["The", "Ġtriangle"]


def test_tiny_is_seeded():
    a, _ = tiny("resampler", seed=5)
    b, _ = tiny("resampler", seed=5)
    c, _ = tiny("resampler", seed=6)
    state_b, state_c = b.state_dict(), c.state_dict()
    assert all(torch.equal(t, state_b[k]) for k, t in a.state_dict().items())
    assert not torch.equal(a.state_dict()["model.connector.queries"], state_c["model.connector.queries"])


def _text(cls, tokenizer):
    return cls(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=len(tokenizer),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Tiny image checkpoints of each source class, written by stock transformers."""
    root = tmp_path_factory.mktemp("sources")
    torch.manual_seed(0)
    image_only = tiny_tokenizer(placeholders=("<image>",))  # LLaVA-1.5/NeXT tokenizers have no <video>
    clip_stats = {"image_mean": [0.4, 0.4, 0.4], "image_std": [0.3, 0.3, 0.3]}
    made = {}

    llava = LlavaForConditionalGeneration(
        LlavaConfig(
            vision_config=CLIPVisionConfig(**TOWER),
            text_config=_text(LlamaConfig, image_only),
            image_token_index=image_only.image_token_id,
            vision_feature_layer=-2,
            vision_feature_select_strategy="default",
        )
    )
    llava.save_pretrained(root / "llava")
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, **clip_stats
    )
    LlavaProcessor(image_processor=image_processor, tokenizer=image_only, patch_size=8).save_pretrained(
        root / "llava"
    )
    made["llava"] = llava

    nxt = LlavaNextForConditionalGeneration(
        LlavaNextConfig(
            vision_config=CLIPVisionConfig(**TOWER),
            text_config=_text(LlamaConfig, image_only),
            image_token_index=image_only.image_token_id,
            image_grid_pinpoints=[[32, 32], [32, 64], [64, 32]],
        )
    )
    nxt.save_pretrained(root / "llava_next")
    image_only.save_pretrained(root / "llava_next")
    made["llava_next"] = nxt

    both = tiny_tokenizer()
    onevision = LlavaOnevisionForConditionalGeneration(
        LlavaOnevisionConfig(
            vision_config=SiglipVisionConfig(**TOWER, vision_use_head=False),
            text_config=_text(Qwen2Config, both),
            image_token_index=both.image_token_id,
            video_token_index=both.video_token_id,
            image_grid_pinpoints=[[32, 32], [64, 64]],
        )
    )
    onevision.save_pretrained(root / "onevision")
    both.save_pretrained(root / "onevision")
    made["onevision"] = onevision

    plain = tiny_tokenizer(placeholders=())
    for name, tower, tower_processor, lm_cls, lm_config in (
        (
            "clip",
            CLIPVisionModel(CLIPVisionConfig(**TOWER)),
            CLIPImageProcessorPil(**clip_stats),
            LlamaForCausalLM,
            LlamaConfig,
        ),
        (
            "siglip",
            SiglipVisionModel(SiglipVisionConfig(**TOWER)),
            SiglipImageProcessorPil(),
            Qwen2ForCausalLM,
            Qwen2Config,
        ),
    ):
        tower.save_pretrained(root / name)
        tower_processor.save_pretrained(root / name)
        lm = lm_cls(_text(lm_config, plain))
        lm.save_pretrained(root / f"{name}_lm")
        plain.save_pretrained(root / f"{name}_lm")
        made[name], made[f"{name}_lm"] = tower, lm
    return root, made


def _same_weights(source_state: dict, ours: dict, rename=lambda k: k):
    """Every source tensor is in ours (embeddings: the rows that existed before the vocabulary grew)."""
    for key, tensor in source_state.items():
        mine = ours[rename(key)]
        if mine.shape != tensor.shape:  # vocabulary rows added for <video>/<image>
            mine = mine[: tensor.shape[0]]
        assert torch.equal(tensor, mine), key


@pytest.mark.parametrize("kind", ["llava", "llava_next", "onevision"])
def test_from_image_llm_carries_checkpoint_weights(sources, kind):
    root, made = sources
    model, processor = from_image_llm(root / kind, connector="resampler" if kind == "onevision" else None)
    _same_weights(made[kind].state_dict(), model.state_dict())
    assert processor.tokenizer.convert_tokens_to_ids("<video>") == model.config.video_token_index
    assert processor.tokenizer.convert_tokens_to_ids("<image>") == model.config.image_token_index
    assert model.config.text_config.vocab_size >= len(processor.tokenizer)
    assert model.config.vision_feature_layer == made[kind].config.vision_feature_layer
    if kind == "llava":  # normalisation comes from the source's image processor
        assert processor.frame_transform.mean == (0.4, 0.4, 0.4)
    if kind == "onevision":  # the new connector got its own init, not empty memory
        queries = model.model.connector.queries
        assert torch.isfinite(queries).all() and 0.005 < queries.std().item() < 0.05
    _forward(model, processor)


@pytest.mark.parametrize("tower", ["clip", "siglip"])
def test_from_image_llm_joins_a_vision_encoder_and_an_lm(sources, tower):
    root, made = sources
    model, processor = from_image_llm((root / tower, root / f"{tower}_lm"), connector="llava-next-video")
    state = model.state_dict()
    # SigLIP's attention-pooling head is dropped: LLaVA-OneVision uses the patch tokens.
    tower_state = {k: v for k, v in made[tower].state_dict().items() if not k.startswith("head.")}
    _same_weights(tower_state, state, lambda k: f"model.vision_tower.{k}")
    _same_weights(
        made[f"{tower}_lm"].state_dict(),
        state,
        lambda k: k if k.startswith("lm_head") else f"model.language_model.{k.removeprefix('model.')}",
    )
    assert len(processor.tokenizer) == made[f"{tower}_lm"].config.vocab_size + 2  # <image> and <video> added
    assert {"<image>", "<video>"} <= set(processor.tokenizer.get_vocab())
    assert model.config.vision_feature_select_strategy == ("default" if tower == "clip" else "full")
    expected_mean = (0.4, 0.4, 0.4) if tower == "clip" else (0.5, 0.5, 0.5)
    assert processor.frame_transform.mean == expected_mean
    _forward(model, processor)


def test_from_image_llm_pair_with_temporal_adapters(sources):
    """Adapters asked for in the overrides are new weights: the pair still loads, adapters start as identity."""
    root, made = sources
    adapter = {"type": "st_adapter", "kernel_size": [3, 3, 3], "layers": [0, 1]}
    model, processor = from_image_llm(
        (root / "siglip", root / "siglip_lm"), connector="frames", adapter=adapter
    )
    ups = [m.up.weight for m in model.modules() if type(m).__name__ == "STAdapter"]
    assert len(ups) == 2 and all(float(w.abs().sum()) == 0.0 for w in ups)
    tower_state = {k: v for k, v in made["siglip"].state_dict().items() if not k.startswith("head.")}
    _same_weights(tower_state, model.state_dict(), lambda k: f"model.vision_tower.{k}")
    _forward(model, processor)


def test_from_image_llm_refuses_other_checkpoints(sources):
    root, _ = sources
    with pytest.raises(ValueError, match=r"'llama' checkpoint.*\(vision encoder, causal LM\) pair"):
        from_image_llm(root / "clip_lm")


def test_model_build_command_writes_a_loadable_checkpoint(sources, tmp_path, capsys):
    from videollm.model import VideoLLMForConditionalGeneration
    from videollm.model.cli import main

    root, made = sources
    out = tmp_path / "video"
    assert (
        main(["build", str(root / "llava"), "--connector", "pool3d", "--frames", "4", "--out", str(out)]) == 0
    )
    assert "pool3d connector" in capsys.readouterr().out
    model = VideoLLMForConditionalGeneration.from_pretrained(out)
    assert model.config.num_frames == 4 and model.config.connector["type"] == "pool3d"
    _same_weights(made["llava"].state_dict(), model.state_dict())
    assert main(["build", str(root / "clip_lm"), "--out", str(tmp_path / "x")]) == 2
    assert "(vision encoder, causal LM) pair" in capsys.readouterr().err
