"""Modified-feature modules for the frozen image encoder: temporal adapters and visual prompts.

Both are off by default; training strategies (`adapter`, `prompt`) switch them on through the
model config, and `apply_adapters` inserts them into any transformers ViT-style vision tower
(CLIP, SigLIP, ...: an `embeddings` module followed by `encoder.layers`).

- **ST-Adapter** (Pan et al., NeurIPS 2022): before the attention of chosen encoder blocks,
  x ← x + up(dwconv3d(down(x))) on the patch tokens, the depthwise conv running across the frames of
  each video. `up` is zero-initialised, so the image model is unchanged at step 0.
- **Mamba adapter** (MoMa-style, `type: mamba`; `videollm.model.mamba`): in the same place, a
  selective state-space scan over each patch position's frames that scales and shifts the tokens
  (zero-initialised too).
- **Visual prompt tuning** (VPT-shallow, Jia et al., ECCV 2022): `num_tokens` learnable tokens
  inserted after the embeddings (behind the class token, if any) and dropped again from the
  tower's outputs, so the connector sees exactly the patch tokens it saw before.

The vision tower runs the B·T frames of a batch of videos as one image batch; the temporal conv
needs to know how to fold that batch back into (B, T): the model wraps the tower call in
`frames_per_video(tower, T)`. Outside that context every image is its own one-frame clip.

The modules live inside the tower (`embeddings.visual_prompt.tokens`,
`encoder.layers.<i>.st_adapter.*` or `encoder.layers.<i>.mamba_adapter.*`), so their weights save and load with the vision tower's keys.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from videollm.model.mamba import MambaAdapter, video_patches

ADAPTER_TYPES = ("st_adapter", "mamba")
# The attribute of an encoder block that holds its adapter, per type (also the checkpoint key part).
ADAPTER_ATTRIBUTES = {"st_adapter": "st_adapter", "mamba": "mamba_adapter"}


def _check_keys(section: str, d: dict[str, Any], cls: type) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"{section} has unknown field(s) {unknown}; known fields: {sorted(known)}")


@dataclass(frozen=True)
class AdapterConfig:
    """Temporal adapter type, placement and size. `layers` None = every encoder block (the papers' setting).

    `type: mamba` reads `bottleneck` as the Mamba mixer's inner width, `kernel_size[0]` as its causal
    conv's width over time, and `state_size` as the SSM state (N); `st_adapter` ignores `state_size`.
    """

    type: str = "st_adapter"
    layers: tuple[int, ...] | None = None
    bottleneck: int | None = None  # None: half the vision width (ST-Adapter's 384 for ViT-B's 768)
    kernel_size: tuple[int, int, int] = (3, 1, 1)  # (time, height, width) of the depthwise conv
    state_size: int = 16  # Mamba's N (mamba only)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AdapterConfig:
        _check_keys("adapter config", d, cls)
        d = dict(d)
        if d.get("layers") in ("all",):
            d["layers"] = None
        if d.get("layers") is not None:
            d["layers"] = tuple(int(i) for i in d["layers"])
        if "kernel_size" in d:
            d["kernel_size"] = tuple(int(k) for k in d["kernel_size"])
        cfg = cls(**d)
        if cfg.type not in ADAPTER_TYPES:
            raise ValueError(f"adapter.type={cfg.type!r} is not known; use one of {', '.join(ADAPTER_TYPES)}")
        if len(cfg.kernel_size) != 3 or any(k < 1 or k % 2 == 0 for k in cfg.kernel_size):
            raise ValueError(f"adapter.kernel_size={list(cfg.kernel_size)} must be 3 odd sizes (time, h, w)")
        if cfg.bottleneck is not None and cfg.bottleneck < 1:
            raise ValueError(f"adapter.bottleneck={cfg.bottleneck} must be a positive integer")
        if not isinstance(cfg.state_size, int) or cfg.state_size < 1:
            raise ValueError(f"adapter.state_size={cfg.state_size!r} must be a positive integer")
        return cfg


@dataclass(frozen=True)
class PromptConfig:
    """VPT-shallow: how many learnable prompt tokens go in after the embeddings."""

    num_tokens: int = 8

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PromptConfig:
        _check_keys("prompt config", d, cls)
        cfg = cls(**d)
        if not isinstance(cfg.num_tokens, int) or cfg.num_tokens < 1:
            raise ValueError(f"prompt.num_tokens={cfg.num_tokens!r} must be a positive integer")
        return cfg


class STAdapter(nn.Module):
    """Bottleneck → depthwise 3-D conv across the frames of each video → up-projection (zero-init), residual.

    Acts on the patch tokens only (the last `num_patches` positions; class and prompt tokens pass
    through). `frames` is how many consecutive batch items form one video; `frames_per_video` sets it.
    """

    def __init__(self, dim: int, bottleneck: int, kernel_size: tuple[int, int, int], num_prefix: int):
        super().__init__()
        self.num_prefix = num_prefix
        self.kernel_size = kernel_size
        self.frames = 1
        self.down = nn.Linear(dim, bottleneck)
        self.conv = nn.Conv3d(
            bottleneck,
            bottleneck,
            kernel_size=kernel_size,
            padding=tuple(k // 2 for k in kernel_size),
            groups=bottleneck,
        )
        self.up = nn.Linear(bottleneck, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's default init for down/conv, zeros for up (transformers' init skips loaded tensors)."""
        from transformers import initialization as init

        for layer in (self.down, self.conv):
            init.kaiming_uniform_(layer.weight, a=math.sqrt(5))
            fan_in = layer.weight[0].numel()
            init.uniform_(layer.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        init.zeros_(self.up.weight)
        init.zeros_(self.up.bias)

    def forward(self, x: Tensor) -> Tensor:
        batch, length, _ = x.shape
        patches = video_patches(x, self.frames, self.num_prefix, "ST-Adapter")
        n = length - self.num_prefix
        side = math.isqrt(n)
        grid = (side, side) if side * side == n else (n, 1)
        if grid[1] == 1 and n > 1 and self.kernel_size[1:] != (1, 1):
            raise ValueError(f"ST-Adapter with a spatial kernel needs a square patch grid, got {n} patches")
        y = self.down(patches)
        y = y.reshape(batch // self.frames, self.frames, *grid, -1).permute(0, 4, 1, 2, 3)
        y = self.conv(y).permute(0, 2, 3, 4, 1).reshape(batch, n, -1)
        return torch.cat([x[:, : self.num_prefix], patches + self.up(y)], dim=1)


class VisualPrompt(nn.Module):
    """VPT-shallow prompt tokens: inserted after the first `num_prefix` embedding positions."""

    def __init__(self, num_tokens: int, dim: int, patch_size: int | None, num_prefix: int):
        super().__init__()
        self.num_prefix = num_prefix
        self.patch_size = patch_size
        self.tokens = nn.Parameter(torch.empty(num_tokens, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """VPT's init: uniform ±√(6 / (3·patch² + dim)) (Xavier over the patch-embedding fan)."""
        from transformers import initialization as init

        dim = self.tokens.shape[1]
        fan = 3 * self.patch_size**2 if self.patch_size else dim
        bound = math.sqrt(6.0 / (fan + dim))
        init.uniform_(self.tokens, -bound, bound)

    def insert(self, embeddings: Tensor) -> Tensor:
        prompts = self.tokens[None].expand(embeddings.shape[0], -1, -1).to(embeddings.dtype)
        p = self.num_prefix
        return torch.cat([embeddings[:, :p], prompts, embeddings[:, p:]], dim=1)

    def strip(self, hidden: Tensor) -> Tensor:
        p, k = self.num_prefix, self.tokens.shape[0]
        return torch.cat([hidden[:, :p], hidden[:, p + k :]], dim=1)


def _find(module: nn.Module, name: str) -> tuple[str, nn.Module] | None:
    """The shallowest submodule whose dotted name ends with `name`."""
    hits = [(n, m) for n, m in module.named_modules() if n == name or n.endswith("." + name)]
    return min(hits, key=lambda hit: hit[0].count(".")) if hits else None


def tower_parts(vision_model: nn.Module) -> tuple[nn.Module, nn.ModuleList, int, int]:
    """(embeddings, encoder layers, hidden size, class tokens) of a ViT-style transformers tower.

    Public because vLLM's vision tower gets its adapters and hidden-state hooks through it too
    (`videollm.inference.vllm_video_modules`), so both engines find the same layers.
    """
    embeddings = _find(vision_model, "embeddings")
    layers = _find(vision_model, "encoder.layers")
    if embeddings is None or layers is None or not isinstance(layers[1], nn.ModuleList):
        raise ValueError(
            f"{type(vision_model).__name__} has no `embeddings` + `encoder.layers`: temporal adapters and "
            "visual prompts support ViT-style transformers vision towers (CLIP, SigLIP, ...)"
        )
    emb = embeddings[1]
    dim = getattr(getattr(vision_model, "config", None), "hidden_size", None)
    if dim is None:
        dim = emb.patch_embedding.out_channels
    num_cls = 1 if getattr(emb, "class_embedding", None) is not None else 0
    return emb, layers[1], int(dim), num_cls


TEMPORAL_ADAPTERS = (STAdapter, MambaAdapter)


def _layer_pre_hook(attribute: str, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    adapter: STAdapter | MambaAdapter = getattr(module, attribute)
    if args:
        return (adapter(args[0]), *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": adapter(kwargs["hidden_states"])}


def _embeddings_hook(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
    return module.visual_prompt.insert(output)


def _strip_output(prompt: VisualPrompt, out: Any, length: int) -> Any:
    """Drop the prompt tokens from every hidden-state tensor of a tower output (ModelOutput or tuple)."""

    def strip(value: Any) -> Any:
        if isinstance(value, Tensor) and value.ndim == 3 and value.shape[1] == length:
            return prompt.strip(value)
        if isinstance(value, tuple) and value and all(isinstance(v, Tensor) for v in value):
            return tuple(strip(v) for v in value)
        return value

    if isinstance(out, tuple):
        return tuple(strip(v) for v in out)
    for key in ("last_hidden_state", "hidden_states"):
        if out.get(key) is not None:
            out[key] = strip(out[key])
    return out


def apply_adapters(
    vision_model: nn.Module, adapter_cfg: dict[str, Any] | None, prompt_cfg: dict[str, Any] | None
) -> None:
    """Insert zero-initialised temporal adapters and/or VPT prompt tokens into a vision tower, in place.

    `vision_model` is the module the model calls (its outputs get the prompt tokens stripped).
    Call once, at model construction, before weights are loaded.
    """
    if adapter_cfg is None and prompt_cfg is None:
        return
    if any(isinstance(m, (*TEMPORAL_ADAPTERS, VisualPrompt)) for m in vision_model.modules()):
        raise ValueError(
            f"{type(vision_model).__name__} already has adapters/prompts; apply_adapters runs once"
        )
    embeddings, layers, dim, num_cls = tower_parts(vision_model)
    num_prompts = 0
    if prompt_cfg is not None:
        pcfg = PromptConfig.from_dict(prompt_cfg)
        num_prompts = pcfg.num_tokens
        patch = getattr(getattr(vision_model, "config", None), "patch_size", None)
        prompt = VisualPrompt(pcfg.num_tokens, dim, patch, num_cls)
        embeddings.visual_prompt = prompt
        embeddings.register_forward_hook(_embeddings_hook)

        def strip_hook(module: nn.Module, args: tuple, kwargs: dict, out: Any) -> Any:
            hidden = out[0] if isinstance(out, tuple) else out.get("last_hidden_state")
            return _strip_output(prompt, out, hidden.shape[1]) if hidden is not None else out

        vision_model.register_forward_hook(strip_hook, with_kwargs=True)
    if adapter_cfg is not None:
        acfg = AdapterConfig.from_dict(adapter_cfg)
        chosen = range(len(layers)) if acfg.layers is None else acfg.layers
        for i in chosen:
            if not -len(layers) <= i < len(layers):
                raise ValueError(
                    f"adapter.layers has {i}, but the vision tower has {len(layers)} encoder layers"
                )
        bottleneck = acfg.bottleneck or max(1, dim // 2)
        attribute = ADAPTER_ATTRIBUTES[acfg.type]
        for i in sorted({i % len(layers) for i in chosen}):
            if acfg.type == "mamba":
                module = MambaAdapter(
                    dim, bottleneck, acfg.state_size, acfg.kernel_size[0], num_cls + num_prompts
                )
            else:
                module = STAdapter(dim, bottleneck, acfg.kernel_size, num_cls + num_prompts)
            setattr(layers[i], attribute, module)
            layers[i].register_forward_pre_hook(partial(_layer_pre_hook, attribute), with_kwargs=True)


@contextmanager
def frames_per_video(vision_model: nn.Module, num_frames: int) -> Iterator[None]:
    """Within this context, every `num_frames` consecutive images of the tower's batch form one video."""
    if num_frames < 1:
        raise ValueError(f"frames_per_video needs at least 1 frame, got {num_frames}")
    adapters = [m for m in vision_model.modules() if isinstance(m, TEMPORAL_ADAPTERS)]
    previous = [a.frames for a in adapters]
    for adapter in adapters:
        adapter.frames = num_frames
    try:
        yield
    finally:
        for adapter, frames in zip(adapters, previous, strict=True):
            adapter.frames = frames


def is_temporal_adapter_key(name: str) -> bool:
    """Whether a state-dict key belongs to a temporal adapter (any type): video weights of a tower."""
    return any(f".{attribute}." in f".{name}" for attribute in ADAPTER_ATTRIBUTES.values())


def adapter_parameters(vision_model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    """(name, parameter) of every adapter and prompt weight in the tower: what the `adapter`/`prompt` strategies train."""
    for name, module in vision_model.named_modules():
        if isinstance(module, (*TEMPORAL_ADAPTERS, VisualPrompt)):
            for pname, param in module.named_parameters():
                yield f"{name}.{pname}", param


__all__ = [
    "ADAPTER_TYPES",
    "TEMPORAL_ADAPTERS",
    "AdapterConfig",
    "MambaAdapter",
    "PromptConfig",
    "STAdapter",
    "VisualPrompt",
    "adapter_parameters",
    "apply_adapters",
    "frames_per_video",
    "is_temporal_adapter_key",
    "tower_parts",
]
