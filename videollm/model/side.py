"""Ladder side-tuning (LST, Sung et al. 2022) with disentangled spatial/temporal modelling (DiST, Qing et al. 2023).

The image encoder stays frozen and is never back-propagated through: a small side network reads
its hidden states at several depths (detached), pools each to a coarser grid, and climbs a ladder:
at each rung the side state takes in the next depth (a lateral projection) and a temporal
transformer block attends across the frames at each spatial position (the encoder did the spatial
modelling; the side network adds only time, DiST's disentanglement). Its output is upsampled back to
the patch grid and added to the features the connector receives, through a zero-initialised
projection, so the image model is unchanged at step 0.

Training memory and time drop against adapters because no activation of the encoder is kept for
backward: the encoder runs under `no_grad` when it has nothing to train (the model does that).
Only the video path has a side network; images pass as in the image model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class SideConfig:
    """Which encoder depths the side network reads and how big it is.

    `layers`: indices into the encoder's hidden states (0 = embeddings, i = after block i, negative
    from the end), at most as deep as the deepest feature layer the connector uses; None = every
    block up to it. `dim`: the
    side width (None: a quarter of the vision width, rounded to a multiple of `heads`). `stride`: the
    spatial pooling of what it reads (2: a 16×16 grid becomes 8×8).
    """

    layers: tuple[int, ...] | None = None
    dim: int | None = None
    heads: int = 4
    stride: int = 2
    mlp_ratio: float = 2.0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SideConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"side config has unknown field(s) {unknown}; known fields: {sorted(known)}")
        d = dict(d)
        if d.get("layers") in ("all",):
            d["layers"] = None
        if d.get("layers") is not None:
            d["layers"] = tuple(int(i) for i in d["layers"])
            if not d["layers"]:
                raise ValueError("side.layers is empty; list encoder depths to read, or drop it for all")
        cfg = cls(**d)
        for name in ("heads", "stride"):
            value = getattr(cfg, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"side.{name}={value!r} must be a positive integer")
        if cfg.dim is not None and (cfg.dim < 1 or cfg.dim % cfg.heads):
            raise ValueError(f"side.dim={cfg.dim} must be a positive multiple of side.heads={cfg.heads}")
        if cfg.mlp_ratio <= 0:
            raise ValueError(f"side.mlp_ratio={cfg.mlp_ratio} must be > 0")
        return cfg


def read_layers(cfg: SideConfig, num_hidden_layers: int, feature_layer: int | list[int]) -> tuple[int, ...]:
    """The hidden-state indices (non-negative, ascending) the side network reads, checked against the tower."""
    count = num_hidden_layers + 1  # embeddings + one per block
    deepest = max(i % count for i in ([feature_layer] if isinstance(feature_layer, int) else feature_layer))
    layers = range(1, deepest + 1) if cfg.layers is None else cfg.layers
    for i in layers:
        if not -count <= i < count:
            raise ValueError(
                f"side.layers has {i}, but the vision tower has {count} hidden states "
                f"(embeddings + {num_hidden_layers} blocks): use -{count}..{count - 1}"
            )
        if i % count > deepest:
            raise ValueError(
                f"side.layers has {i} (hidden state {i % count}), deeper than the feature layer "
                f"{feature_layer} (hidden state {deepest}) the connector reads; the side network reads "
                "depths up to it (vLLM does not even run the blocks after it)"
            )
    return tuple(sorted({i % count for i in layers}))


def frame_positions(num_frames: int, dim: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Sinusoidal embedding of the frame index (T, dim): any frame count, no learned table to outgrow."""
    position = torch.arange(num_frames, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(num_frames, dim, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)[:, : dim // 2]
    return table.to(dtype)


class SideNetwork(nn.Module):
    """The ladder: lateral projections of pooled encoder depths + a temporal transformer block per rung."""

    def __init__(
        self,
        cfg: SideConfig,
        vision_dim: int,
        out_dim: int,
        layers: tuple[int, ...],
        grid: tuple[int, int],
    ):
        super().__init__()
        dim = cfg.dim or max(cfg.heads, (vision_dim // 4) // cfg.heads * cfg.heads)
        self.layers = layers
        self.grid = grid
        self.stride = cfg.stride
        self.laterals = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(vision_dim), nn.Linear(vision_dim, dim)) for _ in layers
        )
        self.temporal = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim,
                cfg.heads,
                dim_feedforward=round(dim * cfg.mlp_ratio),
                dropout=0.0,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in layers
        )
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, out_dim)  # zero-init: the image model is unchanged at step 0
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's defaults (transformers' init functions, which skip loaded tensors); zeros for `out`."""
        from transformers import initialization as init

        for module in self.modules():
            if isinstance(module, nn.Linear):
                init.kaiming_uniform_(module.weight, a=math.sqrt(5))
                if module.bias is not None:
                    bound = 1 / math.sqrt(module.weight.shape[1])
                    init.uniform_(module.bias, -bound, bound)
            elif isinstance(module, nn.LayerNorm):
                init.ones_(module.weight)
                init.zeros_(module.bias)
            elif isinstance(module, nn.MultiheadAttention):
                init.xavier_uniform_(module.in_proj_weight)
                init.zeros_(module.in_proj_bias)
                init.zeros_(module.out_proj.bias)
        init.zeros_(self.out.weight)
        init.zeros_(self.out.bias)

    def _pool(self, hidden: Tensor) -> Tensor:
        """(frames, h·w, D) patch features → (frames, h'·w', D) on the pooled grid (ceil, as connectors do)."""
        h, w = self.grid
        x = hidden.transpose(1, 2).unflatten(2, (h, w))
        if self.stride > 1:
            x = F.avg_pool2d(x, self.stride, ceil_mode=True, count_include_pad=False)
        return x.flatten(2).transpose(1, 2)

    def forward(self, hidden_states: list[Tensor] | tuple[Tensor, ...], num_frames: int) -> Tensor:
        """Patch features of the read depths, each (videos·T, h·w, vision_dim) → residual (videos·T, h·w, out_dim)."""
        frames, n, _ = hidden_states[0].shape
        h, w = self.grid
        side = None
        for hidden, lateral, block in zip(hidden_states, self.laterals, self.temporal, strict=True):
            x = lateral(self._pool(hidden.detach()))  # detached: nothing flows back into the encoder
            side = x if side is None else side + x
            pooled = side.shape[1]
            # (videos·T, n', d) → one sequence over time per video and pooled position
            seq = side.unflatten(0, (frames // num_frames, num_frames)).transpose(1, 2).flatten(0, 1)
            seq = block(seq + frame_positions(num_frames, seq.shape[-1], seq.device, seq.dtype))
            side = seq.unflatten(0, (frames // num_frames, pooled)).transpose(1, 2).flatten(0, 1)
        out = self.out(self.norm(side))
        if self.stride > 1:
            ph, pw = math.ceil(h / self.stride), math.ceil(w / self.stride)
            grid = out.transpose(1, 2).unflatten(2, (ph, pw))
            out = F.interpolate(grid, size=(h, w), mode="nearest").flatten(2).transpose(1, 2)
        if out.shape[1] != n:
            raise RuntimeError(f"side network made {out.shape[1]} positions for a {h}×{w} grid")
        return out


def build_side(
    side: dict[str, Any],
    vision_config: Any,
    feature_layer: int | list[int],
    grid: tuple[int, int],
) -> SideNetwork:
    """The side network of a model config's `side` dict, sized for its vision tower and feature layers."""
    cfg = SideConfig.from_dict(side)
    layers = read_layers(cfg, vision_config.num_hidden_layers, feature_layer)
    dim = vision_config.hidden_size
    out_dim = dim * (1 if isinstance(feature_layer, int) else len(feature_layer))
    return SideNetwork(cfg, dim, out_dim, layers, grid)


__all__ = ["SideConfig", "SideNetwork", "build_side", "frame_positions", "read_layers"]
