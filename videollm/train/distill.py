"""The `distill` add-on: a loss that keeps an adapted model close to the frozen image model.

The survey's knowledge-distillation branch: when features are modified (adapters, LoRA, full
fine-tuning), video training can erase what the image model knew. A frozen copy of the image model
(the teacher) sees the same inputs, and the student pays for drifting from it:

- `target: vision`: MSE between the student's and the teacher's vision features (the layer the
  model feeds to its projector), for every image and video frame of the batch. The teacher is the
  vision tower as loaded, copied before adapters were inserted.
- `target: lm`: KL(teacher ‖ student) between next-token distributions at supervised positions, at
  `temperature` (Hinton et al.), on image samples (`apply_to: image`: what the image model was good at) or
  on all of them. With LoRA the teacher is the same model with its adapters switched off (no copy);
  otherwise a frozen copy of the model as loaded.

The student's vision features are captured by a forward hook during the ordinary forward pass, so
distillation costs one teacher forward, never a second student forward.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from videollm.data.collate import IGNORE_INDEX
from videollm.train.recipe import DistillSpec, RecipeError


def _inner(model: nn.Module) -> nn.Module:
    while hasattr(model, "base_model") and model.base_model is not model:  # peft wrappers
        model = model.base_model
    return getattr(model, "model", model)


class Distiller:
    """Holds the teacher and computes the distillation loss for one batch.

    Build it from the model *before* the strategy modifies it (`Distiller.before_strategy`), then
    call `attach(student)` once the strategy has been applied.
    """

    def __init__(self, spec: DistillSpec, teacher: nn.Module | None, feature_layer: int | list[int]):
        self.spec = spec
        self.teacher = teacher
        self.feature_layer = feature_layer
        self._captured: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._handle = None
        self.uses_peft_teacher = teacher is None

    @classmethod
    def before_strategy(cls, model: nn.Module, spec: DistillSpec, strategy: str) -> Distiller:
        layer = model.config.vision_feature_layer
        if spec.target == "vision":
            teacher = copy.deepcopy(_inner(model).vision_tower)
        elif strategy in ("lora", "qlora"):
            teacher = None  # the peft model with its adapters disabled
        else:
            teacher = copy.deepcopy(model)
        if teacher is not None:
            teacher.eval().requires_grad_(False)
        return cls(spec, teacher, layer)

    def attach(self, student: nn.Module) -> None:
        """Hook the student's vision tower (vision target) and check that something there learns."""
        if self.spec.target != "vision":
            return
        tower = _inner(student).vision_tower
        if not any(p.requires_grad for p in tower.parameters()):
            raise RecipeError(
                "distill.target is 'vision' but nothing in the vision tower trains under this strategy; use "
                "distill.target lm, or a strategy that changes the vision features (adapter, full)"
            )

        def capture(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            if module.training:
                pixels = args[0] if args else kwargs["pixel_values"]
                self._captured.append((pixels, self._select(output.hidden_states)))

        self._handle = tower.register_forward_hook(capture, with_kwargs=True)

    def _select(self, hidden_states: tuple[torch.Tensor, ...]) -> torch.Tensor:
        layer = self.feature_layer
        if isinstance(layer, int):
            return hidden_states[layer]
        return torch.cat([hidden_states[i] for i in layer], dim=-1)

    def loss(self, student: nn.Module, inputs: dict[str, Any], outputs: Any) -> torch.Tensor | None:
        """The weighted distillation loss for the batch just forwarded (None when it does not apply)."""
        if self.spec.target == "vision":
            captured, self._captured = self._captured, []
            if not captured:
                return None
            losses = []
            for pixels, features in captured:
                with torch.no_grad():
                    out = self.teacher(pixels, output_hidden_states=True, return_dict=True)
                target = self._select(out.hidden_states)
                losses.append(F.mse_loss(features.float(), target.float()))
            return self.spec.weight * torch.stack(losses).mean()
        return self._lm_loss(student, inputs, outputs)

    def _lm_loss(self, student: nn.Module, inputs: dict[str, Any], outputs: Any) -> torch.Tensor | None:
        if self.spec.apply_to == "image" and inputs.get("pixel_values") is None:
            return None
        labels = inputs["labels"]
        mask = labels[:, 1:] != IGNORE_INDEX  # positions whose next token is supervised
        if not mask.any():
            return None
        model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
        context = student.disable_adapter() if self.uses_peft_teacher else nullcontext()
        teacher = student if self.uses_peft_teacher else self.teacher
        with torch.no_grad(), context:
            teacher_logits = teacher(**model_inputs).logits
        t = self.spec.temperature
        student_logp = F.log_softmax(outputs.logits[:, :-1][mask].float() / t, dim=-1)
        teacher_logp = F.log_softmax(teacher_logits[:, :-1][mask].float() / t, dim=-1)
        kl = F.kl_div(student_logp, teacher_logp, log_target=True, reduction="batchmean") * t * t
        return self.spec.weight * kl

    def clear(self) -> None:
        self._captured = []


__all__ = ["Distiller"]
