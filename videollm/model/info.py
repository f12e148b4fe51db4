"""`videollm model info`: what a video model costs — parameters per part and tokens per video.

The model is built from its config on the meta device (shapes, no weights), so real-size models
are inspected in a second without downloading or allocating anything. Any LLaVA-family config is
read as the video model videollm makes of it: LLaVA-OneVision as itself, LLaVA-NeXT-Video with
its average pooling before the projector, image models (LLaVA-1.5, LLaVA-NeXT) with the default
connector. Named presets ship the real configs of published checkpoints together with their
published parameter counts (see `presets/README.md`), which the printout sets side by side.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from videollm.model.connectors import ConnectorConfig, num_tokens
from videollm.model.tokens import frame_grid, video_num_tokens

PRESETS_DIR = Path(__file__).with_name("presets")
PARTS = ("vision", "projector", "connector", "adapters", "lm")
LABELS = {
    "vision": "vision",
    "projector": "projector",
    "connector": "connector",
    "adapters": "adapters",
    "lm": "LM",
}
LLAVA_FAMILY = ("videollm", "llava_onevision", "llava_next_video", "llava_next", "llava")


@cache
def presets() -> dict[str, dict[str, Any]]:
    """Named real-size configs: name → {file, hub_id, published_params, published_as, published_source}."""
    return json.loads((PRESETS_DIR / "index.json").read_text())


def read_config_dict(source: str) -> dict[str, Any]:
    """The config.json of a preset name, a checkpoint folder, a config file or a hub id."""
    if source in presets():
        return json.loads((PRESETS_DIR / presets()[source]["file"]).read_text())
    path = Path(source)
    if path.is_dir() and not (path / "config.json").is_file():
        raise ValueError(
            f"{source} is a folder without a config.json; give a checkpoint folder or a config.json"
        )
    looks_local = (
        path.is_absolute() or source.startswith(".") or source.count("/") > 1 or source.endswith(".json")
    )
    if looks_local and not path.exists():
        raise ValueError(
            f"{source}: no such file or folder; give a checkpoint folder, a config.json, a hub id, "
            f"or a preset ({', '.join(presets())})"
        )
    from transformers import PretrainedConfig

    try:  # folders, files and hub ids: the same lookup from_pretrained does
        config_dict, _ = PretrainedConfig.get_config_dict(source)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"{source}: not a preset ({', '.join(presets())}), a checkpoint folder, a config.json, "
            f"or a reachable hub id ({e})"
        ) from e
    return config_dict


def as_videollm_config(config_dict: dict[str, Any]):
    """The `VideoLLMConfig` of a videollm or LLaVA-family config dict (see the module docstring)."""
    from videollm.model.config import VideoLLMConfig

    d = dict(config_dict)
    model_type = d.get("model_type")
    if model_type is None:
        raise ValueError("the config has no model_type; is it a model's config.json?")
    if model_type not in LLAVA_FAMILY:
        raise ValueError(
            f"model_type {model_type!r} is not a video model videollm reads; give a videollm checkpoint or a "
            f"LLaVA-family one ({', '.join(LLAVA_FAMILY[1:])})"
        )
    if model_type == "llava_next_video":  # its pooler: average (or max) before the projector, no newline
        d.setdefault(
            "connector",
            ConnectorConfig(
                type="spatial_pool",
                mode=d.get("spatial_pool_mode", "average"),
                stride=d.get("spatial_pool_stride", 2),
                stage="pre",
            ).to_dict(),
        )
        d.setdefault("newline", "none")
    d["model_type"] = VideoLLMConfig.model_type
    d["architectures"] = ["VideoLLMForConditionalGeneration"]
    return VideoLLMConfig.from_dict(d)


def build_on_meta(config) -> nn.Module:
    """`VideoLLMForConditionalGeneration` with every tensor on the meta device: shapes only."""
    from videollm.model.modeling import VideoLLMForConditionalGeneration

    with torch.device("meta"):
        return VideoLLMForConditionalGeneration(config)


def part_of(name: str) -> str:
    """Which part of a LLaVA-style model a parameter belongs to, from its name."""
    if any(f".{m}." in name for m in ("st_adapter", "mamba_adapter", "visual_prompt")):
        return "adapters"
    if name.startswith(("side.", "model.side.")):  # the side network: trained like the adapters
        return "adapters"
    if "vision_tower" in name:
        return "vision"
    if "multi_modal_projector" in name or name.endswith("image_newline"):
        return "projector"
    if "connector" in name or "vision_resampler" in name:
        return "connector"
    if "language_model" in name or name.startswith("lm_head"):
        return "lm"
    raise ValueError(f"parameter {name!r} belongs to no known part of a LLaVA-style model")


def count_parameters(model: nn.Module, train: Iterable[str] | None = None) -> dict[str, tuple[int, int]]:
    """part → (trainable, frozen) parameter counts; `train` = the parts that train (default: all).

    Shared (tied) tensors are counted once, as checkpoints store them once.
    """
    train = set(PARTS if train is None else train)
    unknown = train - set(PARTS)
    if unknown:
        raise ValueError(f"unknown part(s) {sorted(unknown)} to train; parts are {', '.join(PARTS)}")
    counts = {part: [0, 0] for part in PARTS}
    for name, param in model.named_parameters():  # named_parameters yields each shared tensor once
        part = part_of(name)
        counts[part][0 if part in train else 1] += param.numel()
    return {part: (t, f) for part, (t, f) in counts.items()}


def context_length(text_config: Any) -> int | None:
    """Positions the LM attends to: max_position_embeddings, times a linear/dynamic RoPE scaling factor."""
    positions = getattr(text_config, "max_position_embeddings", None)
    rope = getattr(text_config, "rope_parameters", None) or {}
    if positions and rope.get("rope_type") in ("linear", "dynamic") and rope.get("factor"):
        return int(positions * rope["factor"])
    return positions


@dataclass
class ModelInfo:
    source: str
    connector: dict[str, Any]
    newline: str
    grid: tuple[int, int]
    parts: dict[str, tuple[int, int]]
    tokens: dict[int, tuple[int, int]]  # frames → (connector tokens, tokens per video incl. newlines)
    context: int | None
    published: dict[str, Any] | None = None
    adapter: dict[str, Any] | None = field(default=None)
    prompt: dict[str, Any] | None = field(default=None)

    @property
    def total(self) -> int:
        return sum(t + f for t, f in self.parts.values())

    @property
    def published_delta(self) -> float | None:
        """(ours − published) / published, when a published count is known."""
        if not self.published:
            return None
        return (self.total - self.published["published_params"]) / self.published["published_params"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "connector": self.connector,
            "newline": self.newline,
            "grid": list(self.grid),
            "parameters": {p: {"trainable": t, "frozen": f} for p, (t, f) in self.parts.items()},
            "total": self.total,
            "published": self.published,
            "published_delta": self.published_delta,
            "tokens": {str(n): {"connector": c, "video": v} for n, (c, v) in self.tokens.items()},
            "context": self.context,
        }


def model_info(
    source: str, frames: Sequence[int] = (8, 16, 32), train: Iterable[str] | None = None
) -> ModelInfo:
    """Parameters per part and tokens per video of `source` (preset name, folder, config.json, hub id)."""
    if not frames or any(n < 1 for n in frames):
        raise ValueError(f"--frames needs frame counts ≥ 1, got {list(frames)}")
    config = as_videollm_config(read_config_dict(source))
    model = build_on_meta(config)
    grid = frame_grid(config.vision_config)
    connector = ConnectorConfig.from_dict(config.connector)
    tokens = {n: (num_tokens(connector, n, *grid), video_num_tokens(config, n)) for n in frames}
    return ModelInfo(
        source=source,
        connector=config.connector,
        newline=config.newline,
        grid=grid,
        parts=count_parameters(model, train),
        tokens=tokens,
        context=context_length(config.text_config),
        published=presets().get(source),
        adapter=config.adapter,
        prompt=config.prompt,
    )


def _describe_connector(connector: dict[str, Any]) -> str:
    details = ", ".join(
        f"{k}={v}" for k, v in connector.items() if k not in ("type", "stage") and v is not None
    )
    return (
        f"{connector['type']} ({details}; {connector['stage']}-projector)" if details else connector["type"]
    )


def format_info(info: ModelInfo) -> str:
    """The human-readable report `videollm model info` prints."""
    lines = [
        f"{info.source}: VideoLLMForConditionalGeneration built on the meta device (no weights)",
        f"connector: {_describe_connector(info.connector)}; newline: {info.newline}; "
        f"frame grid {info.grid[0]}×{info.grid[1]} patches",
    ]
    if info.adapter or info.prompt:
        lines.append(f"adapters: {info.adapter or 'none'}; visual prompts: {info.prompt or 'none'}")
    lines += ["", f"{'part':<11}{'trainable':>16}{'frozen':>16}{'total':>16}"]
    for part in PARTS:
        t, f = info.parts[part]
        lines.append(f"{LABELS[part]:<11}{t:>16,}{f:>16,}{t + f:>16,}")
    trainable = sum(t for t, _ in info.parts.values())
    lines.append(f"{'total':<11}{trainable:>16,}{info.total - trainable:>16,}{info.total:>16,}")
    if info.published:
        p = info.published
        lines += [
            f"{'published':<11}{'':>32}{p['published_params']:>16,}",
            f"  ours {info.total / 1e9:.3f}B vs published {p['published_as']} ({info.published_delta:+.2%})",
            f"  {p['hub_id']}: {p['published_source']}",
        ]
    context = f"LM context {info.context:,}" if info.context else "LM context unknown"
    lines += ["", f"{'frames':>6}{'tokens/frame':>14}{'tokens/video':>14}   {context}"]
    for n, (connector_tokens, video) in info.tokens.items():
        per_frame = connector_tokens / n
        fits = "" if not info.context else ("fits" if video <= info.context else "over the context")
        lines.append(f"{n:>6}{per_frame:>14.4g}{video:>14,}   {fits}")
    newline_note = {"video": "+1 newline per video", "frame": "+1 newline per frame", "none": "no newlines"}
    lines.append(f"(tokens/frame: the connector's, averaged; tokens/video: {newline_note[info.newline]})")
    return "\n".join(lines)


__all__ = [
    "PARTS",
    "ModelInfo",
    "as_videollm_config",
    "build_on_meta",
    "count_parameters",
    "format_info",
    "model_info",
    "part_of",
    "presets",
    "read_config_dict",
]
