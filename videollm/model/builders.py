"""Where video models come from: an image-language model (`from_image_llm`) or nothing (`tiny`).

`from_image_llm` is image-to-video transfer's first step: take a LLaVA-family image checkpoint
(LLaVA-1.5, LLaVA-NeXT, LLaVA-OneVision) or a (vision encoder, causal LM) pair, keep every weight,
add the connector (and adapters/prompts when asked), give the tokenizer a `<video>` placeholder,
and assemble the matching processor. `tiny` builds the same kind of model at toy size, seeded, in
about a second, with a locally built tokenizer: what tests everywhere use.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForCausalLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedTokenizerBase,
)
from transformers.models.auto.modeling_auto import MODEL_MAPPING
from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
    LlavaOnevisionImageProcessorPil,
)

from videollm.model.adapters import adapter_parameters
from videollm.model.config import CLS_TOWERS, VideoLLMConfig
from videollm.model.connectors import PRESETS, ConnectorConfig
from videollm.model.frames import CLIP_MEAN, CLIP_STD
from videollm.model.modeling import VideoLLMForConditionalGeneration
from videollm.model.processor import VideoLLMProcessor
from videollm.model.tokenizer import CHAT_TEMPLATE, IMAGE_TOKEN, VIDEO_TOKEN, tiny_tokenizer
from videollm.model.tokens import frame_grid

logger = logging.getLogger(__name__)

SourceLike = str | os.PathLike
IMAGE_LLM_TYPES = ("llava", "llava_next", "llava_onevision")
# Config fields an image LLaVA shares with VideoLLMConfig (carried over as they are).
SHARED_FIELDS = (
    "projector_hidden_act",
    "vision_feature_select_strategy",
    "vision_feature_layer",
    "multimodal_projector_bias",
    "tie_word_embeddings",
    "image_grid_pinpoints",
    "vision_aspect_ratio",
    "image_token_index",
)
# The feature choice of each tower's anchor: LLaVA's CLIP (penultimate layer, class token dropped),
# LLaVA-OneVision's SigLIP (last layer, every token).
TOWER_FEATURES = {
    "clip_vision_model": {"vision_feature_layer": -2, "vision_feature_select_strategy": "default"},
    "siglip_vision_model": {"vision_feature_layer": -1, "vision_feature_select_strategy": "full"},
}
SIGLIP_MEAN = SIGLIP_STD = (0.5, 0.5, 0.5)


def connector_dict(connector: str | dict | ConnectorConfig | None) -> dict:
    """A connector given as a preset name ('llava-next-video'), a type ('resampler'), a dict or a ConnectorConfig."""
    if isinstance(connector, str):
        if connector in PRESETS:
            return PRESETS[connector].to_dict()
        return ConnectorConfig(type=connector).to_dict()
    return ConnectorConfig.from_dict(connector).to_dict()


def onevision_pinpoints(image_size: int, max_tiles: int = 6) -> list[list[int]]:
    """LLaVA-OneVision's anyres grid (1..6 tiles per side) for a tower of `image_size` pixels."""
    return [
        [image_size * i, image_size * j] for i in range(1, max_tiles + 1) for j in range(1, max_tiles + 1)
    ]


def build_processor(
    config: VideoLLMConfig,
    tokenizer: PreTrainedTokenizerBase,
    image_mean: tuple[float, ...] = CLIP_MEAN,
    image_std: tuple[float, ...] = CLIP_STD,
    chat_template: str | None = None,
) -> VideoLLMProcessor:
    """The processor that matches `config`: frame size, token counts and placeholders all from the model."""
    size = config.vision_config.image_size
    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": size, "width": size},
        image_mean=list(image_mean),
        image_std=list(image_std),
        image_grid_pinpoints=config.image_grid_pinpoints,
    )
    grid_h, grid_w = frame_grid(config.vision_config)
    has_cls = config.vision_config.model_type in CLS_TOWERS
    return VideoLLMProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        num_image_tokens=grid_h * grid_w + int(has_cls),
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        chat_template=chat_template or tokenizer.chat_template or CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
        video_token=VIDEO_TOKEN,
        vision_aspect_ratio=config.vision_aspect_ratio,
        connector=config.connector,
        newline=config.newline,
        time_instruction=config.time_instruction,
        num_frames=config.num_frames,
        max_position_embeddings=getattr(config.text_config, "max_position_embeddings", None),
    )


def _tiny_vision(vision: str, size: int, patch: int) -> dict[str, Any]:
    common = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": size,
        "patch_size": patch,
    }
    if vision == "clip":
        return {"model_type": "clip_vision_model", **common}
    if vision == "siglip":
        return {"model_type": "siglip_vision_model", "vision_use_head": False, **common}
    raise ValueError(f"vision={vision!r} is not a tiny tower; use 'clip' or 'siglip'")


def _tiny_text(lm: str, tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    if lm not in ("llama", "qwen2"):
        raise ValueError(f"lm={lm!r} is not a tiny LM; use 'llama' or 'qwen2'")
    return {
        "model_type": lm,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,  # head size 32: the smallest vLLM's CPU attention kernels take
        "num_key_value_heads": 1,
        "vocab_size": len(tokenizer),
        "max_position_embeddings": 4096,
        "bos_token_id": tokenizer.convert_tokens_to_ids("<|im_start|>"),
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
    }


def tiny(
    connector: str | dict | ConnectorConfig | None = "spatial_pool",
    vision: str = "clip",
    lm: str = "llama",
    *,
    image_size: int = 32,
    patch_size: int = 8,
    seed: int = 0,
    **overrides: Any,
) -> tuple[VideoLLMForConditionalGeneration, VideoLLMProcessor]:
    """A seeded toy video model and its processor: `vision` ('clip'|'siglip') × `lm` ('llama'|'qwen2') × connector.

    Hidden sizes 32 (vision) / 64 (LM), 2 layers each, `image_size`/`patch_size` 32/8 (a 4×4 grid per
    frame). `overrides` are VideoLLMConfig fields (newline, adapter, num_frames, ...); `vision_config` and
    `text_config` dicts are merged into the tiny ones; `tokenizer` replaces the byte-level `tiny_tokenizer()`
    (e.g. one trained on a corpus with `tiny_tokenizer(corpus=...)`).
    """
    tokenizer = overrides.pop("tokenizer", None) or tiny_tokenizer()
    vision_config = {**_tiny_vision(vision, image_size, patch_size), **overrides.pop("vision_config", {})}
    text_config = {**_tiny_text(lm, tokenizer), **overrides.pop("text_config", {})}
    fields = {
        **TOWER_FEATURES[vision_config["model_type"]],
        "image_grid_pinpoints": onevision_pinpoints(image_size, max_tiles=2),
        **overrides,
    }
    config = VideoLLMConfig(
        vision_config=vision_config,
        text_config=text_config,
        connector=connector_dict(connector),
        image_token_index=tokenizer.image_token_id,
        video_token_index=tokenizer.video_token_id,
        **fields,
    )
    torch.manual_seed(seed)
    model = VideoLLMForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    mean, std = (SIGLIP_MEAN, SIGLIP_STD) if vision == "siglip" else (CLIP_MEAN, CLIP_STD)
    return model, build_processor(config, tokenizer, mean, std)


def _add_placeholders(tokenizer: PreTrainedTokenizerBase) -> None:
    """Give the tokenizer `<image>`/`<video>` special tokens if it lacks them (LM tokenizers, LLaVA-1.5)."""
    vocab = tokenizer.get_vocab()
    missing = [tok for tok in (IMAGE_TOKEN, VIDEO_TOKEN) if tok not in vocab]
    if missing:
        tokenizer.add_special_tokens({"extra_special_tokens": missing}, replace_extra_special_tokens=False)


def _vision_config(config: PretrainedConfig) -> PretrainedConfig:
    """The vision tower config inside a CLIP/SigLIP checkpoint config (or the config itself)."""
    vision = getattr(config, "vision_config", None) or config
    if vision.model_type not in TOWER_FEATURES:
        raise ValueError(
            f"vision encoder of type {vision.model_type!r} is not supported; use a CLIP or SigLIP checkpoint"
        )
    return vision


def _image_stats(source: SourceLike, vision_type: str, **load_kwargs: Any) -> tuple[tuple, tuple]:
    """Normalisation of the source's image processor (the tower was trained with it)."""
    try:
        processor = AutoImageProcessor.from_pretrained(source, backend="pil", **load_kwargs)
        return tuple(processor.image_mean), tuple(processor.image_std)
    except (OSError, ValueError):
        logger.warning("no image processor in %s; using the %s defaults", source, vision_type)
        return (SIGLIP_MEAN, SIGLIP_STD) if vision_type == "siglip_vision_model" else (CLIP_MEAN, CLIP_STD)


def _chat_template(source: SourceLike, tokenizer: PreTrainedTokenizerBase, **load_kwargs: Any) -> str:
    """The source's chat template if it renders `{"type": "video"}` parts, else videollm's ChatML one."""
    template = None
    try:
        from transformers import AutoProcessor

        template = AutoProcessor.from_pretrained(source, **load_kwargs).chat_template
    except (OSError, ValueError, TypeError):
        pass
    template = template or tokenizer.chat_template
    if isinstance(template, str) and "video" in template:
        return template
    logger.warning("the chat template of %s has no video parts; using videollm's ChatML template", source)
    return CHAT_TEMPLATE


def from_image_llm(
    source: SourceLike | tuple[SourceLike, SourceLike],
    connector: str | dict | ConnectorConfig | None = None,
    *,
    dtype: torch.dtype | str = "auto",
    chat_template: str | None = None,
    **overrides: Any,
) -> tuple[VideoLLMForConditionalGeneration, VideoLLMProcessor]:
    """A video model from an image-language model, every source weight carried over.

    `source` is a local folder or hub id of a LLaVA-1.5 (`LlavaForConditionalGeneration`), LLaVA-NeXT or
    LLaVA-OneVision checkpoint, or a pair (vision encoder, causal LM) joined by a fresh projector.
    `connector` (preset name, type, dict; default LLaVA-OneVision's) and `overrides` (VideoLLMConfig fields:
    newline, adapter, prompt, num_frames, ...) say how the image model becomes a video model. Hub loading
    options (`revision`, `token`, `local_files_only`, ...) go in `overrides` too.
    """
    load_kwargs = {
        k: overrides.pop(k) for k in ("revision", "token", "local_files_only", "cache_dir") if k in overrides
    }
    if isinstance(source, (tuple, list)):
        return _from_pair(*source, connector, dtype, chat_template, overrides, load_kwargs)
    source_config = AutoConfig.from_pretrained(source, **load_kwargs)
    if source_config.model_type not in IMAGE_LLM_TYPES:
        raise ValueError(
            f"{source} is a {source_config.model_type!r} checkpoint; from_image_llm takes LLaVA-family image models "
            f"({', '.join(IMAGE_LLM_TYPES)}) or a (vision encoder, causal LM) pair"
        )
    tokenizer = AutoTokenizer.from_pretrained(source, **load_kwargs)
    _add_placeholders(tokenizer)
    vision = source_config.vision_config
    fields = {
        k: getattr(source_config, k) for k in SHARED_FIELDS if getattr(source_config, k, None) is not None
    }
    fields.setdefault("image_grid_pinpoints", [[vision.image_size, vision.image_size]])
    config = VideoLLMConfig(
        vision_config=vision.to_dict(),
        text_config=source_config.text_config.to_dict(),
        connector=connector_dict(connector),
        video_token_index=tokenizer.convert_tokens_to_ids(VIDEO_TOKEN),
        **{**fields, "image_token_index": tokenizer.convert_tokens_to_ids(IMAGE_TOKEN), **overrides},
    )
    model = VideoLLMForConditionalGeneration.from_pretrained(
        source, config=config, dtype=dtype, **load_kwargs
    )
    if len(tokenizer) > model.config.text_config.vocab_size:
        model.resize_token_embeddings(len(tokenizer))
    mean, std = _image_stats(source, vision.model_type, **load_kwargs)
    template = chat_template or _chat_template(source, tokenizer, **load_kwargs)
    return model.eval(), build_processor(model.config, tokenizer, mean, std, template)


def _from_pair(
    vision_source: SourceLike,
    lm_source: SourceLike,
    connector: str | dict | ConnectorConfig | None,
    dtype: torch.dtype | str,
    chat_template: str | None,
    overrides: dict[str, Any],
    load_kwargs: dict[str, Any],
) -> tuple[VideoLLMForConditionalGeneration, VideoLLMProcessor]:
    """Vision encoder + causal LM + a fresh projector (and newline, connector)."""
    vision_config = _vision_config(AutoConfig.from_pretrained(vision_source, **load_kwargs))
    vision_model = MODEL_MAPPING[type(vision_config)].from_pretrained(
        vision_source, dtype=dtype, **load_kwargs
    )
    lm = AutoModelForCausalLM.from_pretrained(lm_source, dtype=dtype, **load_kwargs)
    tokenizer = AutoTokenizer.from_pretrained(lm_source, **load_kwargs)
    _add_placeholders(tokenizer)
    tower = vision_model.config.to_dict()
    if tower["model_type"] == "siglip_vision_model":
        tower["vision_use_head"] = False  # LLaVA-OneVision's SigLIP: the patch tokens, no pooling head
    text_config = lm.config.to_dict()
    fields = {
        **TOWER_FEATURES[tower["model_type"]],
        "image_grid_pinpoints": onevision_pinpoints(tower["image_size"]),
        "tie_word_embeddings": bool(getattr(lm.config, "tie_word_embeddings", False)),
        **overrides,
    }
    config = VideoLLMConfig(
        vision_config=tower,
        text_config=text_config,
        connector=connector_dict(connector),
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        video_token_index=tokenizer.convert_tokens_to_ids(VIDEO_TOKEN),
        **fields,
    )
    model = VideoLLMForConditionalGeneration(config).to(lm.dtype)
    state = {f"model.vision_tower.{k}": v for k, v in vision_model.state_dict().items()}
    state |= {
        f"model.language_model.{k.removeprefix('model.')}" if k.startswith("model.") else k: v
        for k, v in lm.state_dict().items()
    }
    result = model.load_state_dict(state, strict=False)
    # Temporal adapters and prompts inserted by `overrides` are new (zero-initialised), not carried over.
    fresh = {f"model.vision_tower.{n}" for n, _ in adapter_parameters(model.model.vision_tower)}
    carried = {
        k for k in model.state_dict() if k.startswith(("model.vision_tower.", "model.language_model."))
    } - fresh
    unloaded = sorted(carried & set(result.missing_keys))
    unexpected = [k for k in result.unexpected_keys if not k.startswith("model.vision_tower.head.")]
    if unloaded or unexpected:
        raise ValueError(
            f"({vision_source}, {lm_source}) does not fit the model: missing {unloaded[:5]}, unexpected {unexpected[:5]}"
        )
    model.tie_weights()
    model.generation_config = lm.generation_config
    del vision_model, lm
    if len(tokenizer) > model.config.text_config.vocab_size:
        model.resize_token_embeddings(len(tokenizer))
    mean, std = _image_stats(vision_source, tower["model_type"], **load_kwargs)
    template = chat_template or _chat_template(lm_source, tokenizer, **load_kwargs)
    return model.eval(), build_processor(model.config, tokenizer, mean, std, template)


__all__ = ["build_processor", "connector_dict", "from_image_llm", "onevision_pinpoints", "tiny"]
