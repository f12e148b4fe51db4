"""Temporal adapters and the side network on vLLM's vision tower, as the transformers model runs them.

vLLM builds its own CLIP/SigLIP tower (same parameter names, `vision_model.encoder.layers.<i>`),
truncated after the deepest feature layer. Three things make it compute what
`VideoLLMModel._encode_frames` computes:

- `add_video_modules` inserts the config's temporal adapters (ST-Adapter or Mamba) into that tower
  with `apply_adapters`, so their checkpoint keys (`vision_tower.vision_model.encoder.layers.<i>.
  st_adapter|mamba_adapter.*`) load with the tower's own loader, and builds the side network
  (`side.*`). Adapter layer indices are resolved against the full tower, as transformers does;
  adapters on blocks vLLM does not run change nothing the connector reads and are left out.
- `encode_video` runs one video's frames inside `frames_per_video`, so adapters scan its frames only.
- `HiddenStates` records the tower's hidden states at the side network's depths with hooks
  (each block's input, before any adapter, as transformers' `hidden_states` holds it).

Visual prompts are not supported here (vLLM's tower returns bare tensors, which prompt stripping needs
as model outputs); the model refuses them with the way out.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from videollm.model.adapters import apply_adapters, frames_per_video, tower_parts
from videollm.model.config import VideoLLMConfig
from videollm.model.modeling import VideoLLMModel
from videollm.model.side import build_side
from videollm.model.tokens import frame_grid


def has_video_modules(config: VideoLLMConfig) -> bool:
    return config.adapter is not None or config.side is not None


def loaded_adapter_spec(adapter: dict[str, Any], total: int, loaded: int) -> dict[str, Any]:
    """The adapter config with `layers` resolved against the full tower (`total` blocks), kept below `loaded`."""
    chosen = adapter.get("layers")
    chosen = range(total) if chosen in (None, "all") else chosen
    for i in chosen:
        if not -total <= i < total:
            raise ValueError(f"adapter.layers has {i}, but the vision tower has {total} encoder layers")
    return {**adapter, "layers": sorted({i % total for i in chosen if i % total < loaded})}


def add_video_modules(model: nn.Module, config: VideoLLMConfig) -> None:
    """Put the config's adapters into `model.vision_tower` and its side network at `model.side` (None if none)."""
    if config.prompt is not None:
        raise ValueError(
            f"visual prompts ({config.prompt}) are not supported on vLLM's vision tower; serve this checkpoint "
            "with --engine transformers, or train with strategy adapter/side instead of prompt"
        )
    if config.adapter is not None:
        _, layers, _, _ = tower_parts(model.vision_tower)
        total = config.vision_config.num_hidden_layers
        apply_adapters(model.vision_tower, loaded_adapter_spec(config.adapter, total, len(layers)), None)
    model.side = (
        None
        if config.side is None
        else build_side(
            config.side, config.vision_config, config.vision_feature_layer, frame_grid(config.vision_config)
        )
    )


class HiddenStates(dict):
    """{hidden-state index: tensor} of the tower's last call, recorded while the context is open."""

    @contextmanager
    def recording(self, tower: nn.Module, indices: tuple[int, ...]) -> Iterator[HiddenStates]:
        _, layers, _, _ = tower_parts(tower)
        handles = []
        for i in indices:
            if i < len(layers):  # the input of block i, before its adapter runs (prepend)

                def before(module, args, kwargs, i=i):
                    self[i] = args[0] if args else kwargs["hidden_states"]

                handles.append(layers[i].register_forward_pre_hook(before, with_kwargs=True, prepend=True))
            else:  # the output of the last block vLLM loaded

                def after(module, args, output, i=i):
                    self[i] = output[0] if isinstance(output, tuple) else output

                handles.append(layers[i - 1].register_forward_hook(after))
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()


def encode_video(model: nn.Module, frames: torch.Tensor) -> torch.Tensor:
    """One video's frames (T, 3, H, W) → selected patch features (T, h·w, D), adapters and side network included."""
    config: VideoLLMConfig = model.config
    hidden = HiddenStates()
    with (
        frames_per_video(model.vision_tower, frames.shape[0]),
        hidden.recording(model.vision_tower, model.side.layers if model.side is not None else ()),
    ):
        features = model.vision_tower(frames, feature_select_strategy=config.vision_feature_select_strategy)
    if model.side is not None:
        features = features + VideoLLMModel.side_features(model, hidden, frames.shape[0]).to(features.dtype)
    return features


__all__ = ["HiddenStates", "add_video_modules", "encode_video", "has_video_modules", "loaded_adapter_spec"]
