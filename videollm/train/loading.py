"""The model a run starts from: a video checkpoint as is, or an image model made into a video model.

`model.base` naming a videollm or LLaVA-OneVision checkpoint (with no other connector asked for) is
loaded as it is, 4-bit for `qlora`; anything else goes through `videollm.model.from_image_llm`
(or `tiny`), seeded with the recipe's seed. An assembled base has freshly initialised parts, so
LoRA runs save it next to their adapters (`base/`), which is what export merges into.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers import AutoConfig, set_seed

from videollm.train.recipe import Recipe, RecipeError

CHECKPOINT_TYPES = ("videollm", "llava_onevision")


@dataclass
class Base:
    model: Any
    processor: Any
    assembled: bool  # built from an image model (not a checkpoint loaded as is)


def _model_type(source: str) -> str | None:
    try:
        return AutoConfig.from_pretrained(source).model_type
    except (OSError, ValueError):
        return None


def load_base(recipe: Recipe, compute_dtype: torch.dtype = torch.float32) -> Base:
    """The recipe's starting model and processor (fp32 weights; 4-bit LM for qlora)."""
    from videollm.model.builders import connector_dict, from_image_llm
    from videollm.model.config import VideoLLMConfig
    from videollm.model.modeling import VideoLLMForConditionalGeneration
    from videollm.model.processor import VideoLLMProcessor

    spec = recipe.model
    set_seed(recipe.seed)
    if spec.tiny is not None:
        from videollm.model.builders import tiny

        if recipe.strategy == "qlora":
            raise RecipeError("strategy 'qlora' needs a saved video checkpoint as model.base, not model.tiny")
        options = {"seed": recipe.seed, **spec.tiny}
        if spec.connector is not None:
            options["connector"] = spec.connector
        model, processor = tiny(**options, **spec.config)
        return Base(model.float(), processor, assembled=True)
    model_type = _model_type(spec.base) if spec.base else None
    if model_type in CHECKPOINT_TYPES:
        config = VideoLLMConfig.from_pretrained(spec.base)
        if spec.connector is None or connector_dict(spec.connector) == config.connector:
            if spec.config:
                raise RecipeError(
                    f"field 'model.config': {sorted(spec.config)} only apply when an image model is turned into a "
                    f"video model; {spec.base} is already one (its config is kept)"
                )
            kwargs: dict[str, Any] = {"dtype": torch.float32}
            if recipe.strategy == "qlora":
                from videollm.train.strategies import quantization_config

                kwargs = {"dtype": compute_dtype, "quantization_config": quantization_config(compute_dtype)}
            model = VideoLLMForConditionalGeneration.from_pretrained(spec.base, **kwargs)
            return Base(model, VideoLLMProcessor.from_pretrained(spec.base), assembled=False)
        if model_type == "videollm":
            raise RecipeError(
                f"field 'model.connector': {spec.base} is a videollm checkpoint with connector {config.connector}; "
                "a trained model keeps its connector (drop model.connector, or start from the image model)"
            )
    if recipe.strategy == "qlora":
        raise RecipeError(
            "strategy 'qlora' loads the LM in 4 bits from a video checkpoint; train the align stage (strategy "
            "frozen) from this image model first and use its output folder as model.base"
        )
    source = spec.base if spec.base else (spec.vision, spec.lm)
    model, processor = from_image_llm(source, spec.connector, dtype=torch.float32, **spec.config)
    return Base(model, processor, assembled=True)


__all__ = ["Base", "load_base"]
