"""The key layout videollm checkpoints are written in: the one both transformers and vLLM load.

transformers 5.19 keeps its CLIP/SigLIP vision towers flattened in memory (`vision_tower.encoder…`)
and, for a model built from scratch, saves them flattened too; it reads both that and the classic
`vision_tower.vision_model.encoder…` layout (a `PrefixChange` conversion). vLLM 0.32 reads only the
classic one (its CLIPVisionModel/SiglipVisionModel hold a `vision_model` child). Which of the two
transformers writes depends on how the model was made (loaded models re-add the prefix, fresh ones
do not), so `saved_layout` pins it: every save applies the full reverse conversion.

Saved keys, LLaVA's classic layout (what llava-hf checkpoints on the Hub use):
`language_model.model.*`, `language_model.lm_head.*`, `vision_tower.vision_model.*`,
`multi_modal_projector.*`, `image_newline`, `connector.*` for connectors with weights, and `side.*`
for a side network.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from transformers import PreTrainedModel
from transformers.conversion_mapping import (
    get_checkpoint_conversion_mapping,
    get_model_conversion_mapping,
    register_checkpoint_conversion_mapping,
)
from transformers.core_model_loading import WeightRenaming

# Top-level prefixes of a saved checkpoint (after the reverse conversion).
SAVED_PREFIXES = (
    "language_model.model.",
    "language_model.lm_head.",
    "vision_tower.vision_model.",
    "multi_modal_projector.",
    "image_newline",
    "connector.",
    "side.",
)


def register_conversions() -> None:
    """Give the videollm classes LLaVA-OneVision's checkpoint conversions (plus the connector's keys)."""
    onevision = get_checkpoint_conversion_mapping("llava_onevision")
    connector = WeightRenaming(source_patterns=r"^connector", target_patterns="model.connector")
    side = WeightRenaming(source_patterns=r"^side", target_patterns="model.side")
    register_checkpoint_conversion_mapping("videollm", [*onevision, connector, side], overwrite=True)
    register_checkpoint_conversion_mapping(
        "VideoLLMModel", get_checkpoint_conversion_mapping("LlavaOnevisionModel"), overwrite=True
    )


@contextmanager
def saved_layout(model: PreTrainedModel) -> Iterator[None]:
    """Within this context `save_pretrained` writes the classic layout, however `model` was made."""
    previous = getattr(model, "_weight_conversions", None)
    model._weight_conversions = get_model_conversion_mapping(model, add_legacy=False)
    try:
        yield
    finally:
        if previous is None:
            del model._weight_conversions
        else:
            model._weight_conversions = previous


__all__ = ["SAVED_PREFIXES", "register_conversions", "saved_layout"]
