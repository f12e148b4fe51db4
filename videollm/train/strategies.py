"""The survey's transfer strategies: which parameters of an image-language model learn, and how.

Each strategy is a function `(model, recipe) -> model` that sets `requires_grad` (and, for LoRA,
wraps the model with peft). Three parameter groups, named as LLaVA-OneVision's tunable parts:

- `vision`: the vision tower's own weights;
- `projector`: the projector, the connector, the image newline, and every module videollm adds to
  the image model (temporal adapters, visual prompts): the new parts, which always learn;
- `lm`: the language model and its head (and LoRA weights on them).

Frozen features (the image model's representations untouched, only new modules learn):
  `frozen`  projector/connector only (LLaVA's alignment stage, Video-ChatGPT, PLLaVA);
  `prompt`  + learnable visual prompt tokens in the vision tower (VPT);
  `side`    + a ladder side network reading the frozen encoder's depths (LST/DiST; the encoder
            runs without autograd);
Modified features (the encoder or the LLM change):
  `adapter` + zero-initialised temporal adapters in the vision tower (`adapter.type`: ST-Adapter
            `st_adapter`, or MoMa-style `mamba`);
  `lora`    + LoRA on the LM (peft; target modules by regex, so the vision tower is untouched unless
            the regex names it), projector/connector trained in full (`modules_to_save`);
  `qlora`   `lora` on a 4-bit (bitsandbytes NF4) LM;
  `full`    everything (a group whose learning rate is 0 stays frozen, e.g. `lr_vision: 0`).
The `distill` add-on (videollm.train.distill) regularises any modified-feature strategy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from videollm.train.recipe import Recipe, RecipeError

if TYPE_CHECKING:
    from peft import PeftModel

logger = logging.getLogger(__name__)

GROUPS = ("vision", "projector", "lm")
# added to the image model by videollm, trained as projector
NEW_MODULES = ("st_adapter", "mamba_adapter", "visual_prompt", "side")
PROJECTOR_MODULES = ("multi_modal_projector", "connector", "image_newline")
# Kept out of 4-bit quantisation: everything but the LM's linear layers (transformers matches these as
# regexes from the start of the module name).
NOT_QUANTISED = [r".*vision_tower", r".*multi_modal_projector", r".*connector", r".*lm_head"]


def param_group(name: str) -> str:
    """`vision`, `projector` or `lm` for a parameter name (peft prefixes and LoRA names included)."""
    parts = name.split(".")
    if any(p in NEW_MODULES for p in parts):
        return "projector"
    if "vision_tower" in parts:
        return "vision"
    if any(p in PROJECTOR_MODULES for p in parts):
        return "projector"
    return "lm"


def _train_projector(model: nn.Module) -> None:
    for name, p in model.named_parameters():
        if param_group(name) == "projector":
            p.requires_grad_(True)


def _freeze(model: nn.Module) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def _inner(model: nn.Module) -> nn.Module:
    """The VideoLLMModel (vision_tower, projector, connector, LM) inside a generation model."""
    return getattr(model, "model", model)


def _add_vision_modules(model: nn.Module, kind: str, spec: dict) -> None:
    """Put adapters/prompts into the tower via the model config's `adapter`/`prompt` dict, as the model would."""
    from videollm.model.adapters import apply_adapters

    current = getattr(model.config, kind, None)
    if current is not None:
        if current != spec and spec:
            raise RecipeError(
                f"the base model already has {kind} {current}, the recipe asks for {spec}; drop `{kind}:` from the "
                "recipe to keep training the existing ones"
            )
        return  # a checkpoint that has them (e.g. a previous adapter stage): train those
    tower = _inner(model).vision_tower
    reference = next(tower.parameters())
    apply_adapters(tower, spec if kind == "adapter" else None, spec if kind == "prompt" else None)
    tower.to(device=reference.device, dtype=reference.dtype)
    setattr(model.config, kind, dict(spec))


def frozen(model: nn.Module, recipe: Recipe) -> nn.Module:
    """Frozen features: vision tower and LM frozen; projector and connector learn."""
    _freeze(model)
    _train_projector(model)
    return model


def prompt(model: nn.Module, recipe: Recipe) -> nn.Module:
    """Visual prompt tuning: learnable prompt tokens in the frozen vision tower, plus the projector."""
    _add_vision_modules(model, "prompt", recipe.prompt or {})
    return frozen(model, recipe)


def adapter(model: nn.Module, recipe: Recipe) -> nn.Module:
    """Temporal adapters (ST-Adapter) in the frozen vision tower, zero-initialised, plus the projector."""
    _add_vision_modules(model, "adapter", recipe.adapter or {})
    return frozen(model, recipe)


def _add_side_network(model: nn.Module, spec: dict) -> None:
    """Give the model a side network via the config's `side` dict, as the model would build it."""
    from videollm.model.side import build_side
    from videollm.model.tokens import frame_grid

    current = getattr(model.config, "side", None)
    if current is not None:
        if current != spec and spec:
            raise RecipeError(
                f"the base model already has side {current}, the recipe asks for {spec}; drop `side:` from the "
                "recipe to keep training the existing one"
            )
        return
    config, inner = model.config, _inner(model)
    network = build_side(
        spec, config.vision_config, config.vision_feature_layer, frame_grid(config.vision_config)
    )
    reference = next(inner.vision_tower.parameters())
    inner.side = network.to(device=reference.device, dtype=reference.dtype)
    config.side = dict(spec)


def side(model: nn.Module, recipe: Recipe) -> nn.Module:
    """Ladder side-tuning (LST/DiST): a side network on the frozen encoder's hidden states, plus the projector."""
    _add_side_network(model, recipe.side or {})
    return frozen(model, recipe)


def lora_config(recipe: Recipe) -> Any:
    from peft import LoraConfig

    spec = recipe.lora
    return LoraConfig(
        r=spec.r,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=spec.target_modules,  # a str is a full-match regex over module names in peft
        bias=spec.bias,
        modules_to_save=["multi_modal_projector", "connector"],
    )


def lora(model: nn.Module, recipe: Recipe) -> PeftModel:
    """LoRA (peft) on the modules `lora.target_modules` matches (the LM by default); projector trained in full.

    The image newline stays as loaded (train it in the `align` stage, as LLaVA does).
    """
    from peft import get_peft_model

    _freeze(model)
    try:
        peft_model = get_peft_model(model, lora_config(recipe))
    except ValueError as e:
        raise RecipeError(f"field 'lora.target_modules' ({recipe.lora.target_modules!r}): {e}") from None
    touched = sorted({param_group(n) for n, p in peft_model.named_parameters() if "lora_" in n})
    logger.info("LoRA on groups %s", touched)
    return peft_model


def disable_cpu_weight_repacking(model: nn.Module) -> int:
    """Stop bitsandbytes repacking 4-bit weights for CPU inference; returns the layers changed.

    bitsandbytes 0.50 converts a Linear4bit's weight to an AVX512-BF16 packed layout on its first
    no-grad, eval-mode CPU forward (an eval pass, generation) and keeps it; gradients through the
    packed layout come out zero, so LoRA stops learning after the first evaluation. Switching the
    fast path off keeps the trainable layout; it costs inference speed on CPU only.
    """
    import bitsandbytes as bnb

    changed = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
            changed += 1
    return changed


def qlora(model: nn.Module, recipe: Recipe) -> PeftModel:
    """LoRA on a 4-bit NF4 LM (load the model with `quantization_config()`; the loader does)."""
    from peft import prepare_model_for_kbit_training

    if not any(type(m).__name__ == "Linear4bit" for m in model.modules()):
        raise RecipeError(
            "strategy 'qlora' needs the LM loaded in 4 bits; the trainer's loader does that for videollm and "
            "LLaVA-OneVision checkpoints (model.base), so run the align stage first when starting from another model"
        )
    disable_cpu_weight_repacking(model)
    model = prepare_model_for_kbit_training(
        model,
        use_gradient_checkpointing=recipe.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
    )
    return lora(model, recipe)


def quantization_config(compute_dtype: torch.dtype) -> Any:
    """bitsandbytes NF4 for the LM's linear layers only (QLoRA's setting: double quantisation)."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
        llm_int8_skip_modules=NOT_QUANTISED,
    )


def full(model: nn.Module, recipe: Recipe) -> nn.Module:
    """Full fine-tuning: every parameter learns (groups with learning rate 0 stay frozen)."""
    for p in model.parameters():
        p.requires_grad_(True)
    return model


STRATEGY_FUNCTIONS: dict[str, Callable[[nn.Module, Recipe], nn.Module]] = {
    "frozen": frozen,
    "prompt": prompt,
    "adapter": adapter,
    "side": side,
    "lora": lora,
    "qlora": qlora,
    "full": full,
}


def group_learning_rates(recipe: Recipe) -> dict[str, float]:
    """Learning rate of each group: `lr` for the LM, `lr_vision`/`lr_projector` when set (LLaVA-OneVision)."""
    return {
        "vision": recipe.lr if recipe.lr_vision is None else recipe.lr_vision,
        "projector": recipe.lr if recipe.lr_projector is None else recipe.lr_projector,
        "lm": recipe.lr,
    }


def apply_strategy(model: nn.Module, recipe: Recipe) -> nn.Module:
    """Apply `recipe.strategy`; freeze groups whose learning rate is 0; refuse a run where nothing trains."""
    model = STRATEGY_FUNCTIONS[recipe.strategy](model, recipe)
    rates = group_learning_rates(recipe)
    for name, p in model.named_parameters():
        if p.requires_grad and rates[param_group(name)] == 0:
            p.requires_grad_(False)
    if not any(p.requires_grad for p in model.parameters()):
        raise RecipeError(f"strategy {recipe.strategy!r} with learning rates {rates} leaves nothing to train")
    return model


def trainable_summary(model: nn.Module) -> dict[str, tuple[int, int]]:
    """(trainable, total) parameter counts per group."""
    out = {g: [0, 0] for g in GROUPS}
    for name, p in model.named_parameters():
        g = out[param_group(name)]
        g[1] += p.numel()
        if p.requires_grad:
            g[0] += p.numel()
    return {g: (t, n) for g, (t, n) in out.items()}


__all__ = [
    "GROUPS",
    "STRATEGY_FUNCTIONS",
    "adapter",
    "apply_strategy",
    "disable_cpu_weight_repacking",
    "frozen",
    "full",
    "group_learning_rates",
    "lora",
    "param_group",
    "prompt",
    "qlora",
    "quantization_config",
    "side",
    "trainable_summary",
]
