"""A Mamba temporal adapter (MoMa-style) for the frozen image encoder, and the selective scan it runs.

MoMa (Yang et al., 2024) carries an image ViT to video by letting a selective state-space model
(Mamba, Gu & Dao 2023) scan the frames and *modulate* the frozen tokens with what it finds, instead
of adding new attention. Here each spatial position's patch feature is one sequence over the T frames
of its video; a Mamba mixer (in-projection to x and a gate z, causal depthwise conv over time,
input-dependent Δ, B, C, selective scan, D skip, SiLU gate) scans it forwards and backwards (shared
weights: a frame sees the frames before and after it), and its output gives a per-token scale and
shift: x ← x · (1 + scale) + shift. The scale/shift projection is zero-initialised, so the image
model is unchanged at step 0.

The scan is transformers' `mamba_selective_scan` (the exact `selective_scan_fn` interface of
`mamba_ssm`): with `mamba_ssm` installed and the inputs on a GPU it dispatches to the CUDA kernel; on
CPU it runs transformers' PyTorch recurrence (sequential over T, which is small for a video).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def selective_scan(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
) -> Tensor:
    """Mamba's selective scan, `mamba_ssm.selective_scan_fn`'s signature and layout.

    u, delta, z: (batch, channels, length); A: (channels, state); B, C: (batch, state, length);
    D, delta_bias: (channels,). h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t u_t; y_t = C_t·h_t + D u_t, times SiLU(z_t).
    """
    from transformers.models.mamba.modeling_mamba import mamba_selective_scan

    # The dispatching wrapper (kernel if mamba_ssm is installed) only helps on a GPU; on CPU go straight
    # to the PyTorch recurrence (no "install mamba-ssm" warning where the kernel could not run anyway).
    scan = mamba_selective_scan if u.is_cuda else mamba_selective_scan.__wrapped__
    return scan(u, delta, A, B, C, D, z, delta_bias=delta_bias, delta_softplus=delta_softplus)


def video_patches(x: Tensor, frames: int, num_prefix: int, adapter: str) -> Tensor:
    """The patch tokens of a vision batch (B·T, length, dim) of whole `frames`-frame videos, prefix dropped.

    Every temporal adapter (this one and `adapters.STAdapter`) folds the batch back into clips, so each
    checks here, with one message, that the tower ran inside `frames_per_video`.
    """
    if x.shape[0] % frames:
        raise ValueError(
            f"{adapter} got a vision batch of {x.shape[0]} frames, not a multiple of frames_per_video="
            f"{frames}; run the tower on whole videos (B·T frames) inside frames_per_video(tower, T)"
        )
    return x[:, num_prefix:]


class MambaAdapter(nn.Module):
    """A bidirectional Mamba mixer over the frames of each video that scales and shifts the patch tokens.

    Acts on the patch tokens (the last positions after `num_prefix` class/prompt tokens, which pass
    through). `frames` is how many consecutive batch items form one video (`frames_per_video` sets it).
    """

    def __init__(self, dim: int, inner: int, state_size: int, conv_size: int, num_prefix: int):
        super().__init__()
        self.num_prefix = num_prefix
        self.frames = 1
        self.dt_rank = math.ceil(dim / 16)  # Mamba's "auto" rank
        self.norm = nn.LayerNorm(dim)
        self.in_proj = nn.Linear(dim, 2 * inner)
        self.conv1d = nn.Conv1d(inner, inner, conv_size, groups=inner, padding=conv_size - 1)
        self.x_proj = nn.Linear(inner, self.dt_rank + 2 * state_size, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, inner)
        self.A_log = nn.Parameter(torch.empty(inner, state_size))
        self.D = nn.Parameter(torch.empty(inner))
        self.modulation = nn.Linear(inner, 2 * dim)  # → (scale, shift), zero-init
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Mamba's init (S4D-real A, unit D, Δ log-uniform in [1e-3, 0.1]); zeros for the modulation."""
        from transformers import initialization as init

        for layer in (self.in_proj, self.conv1d, self.x_proj, self.dt_proj):
            init.kaiming_uniform_(layer.weight, a=math.sqrt(5))
        for layer in (self.in_proj, self.conv1d):
            fan_in = layer.weight[0].numel()
            init.uniform_(layer.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        init.ones_(self.norm.weight)
        init.zeros_(self.norm.bias)
        inner, state = self.A_log.shape
        init.copy_(self.A_log, torch.log(torch.arange(1, state + 1, dtype=torch.float32)).expand(inner, -1))
        init.ones_(self.D)
        init.uniform_(self.dt_proj.weight, -(self.dt_rank**-0.5), self.dt_rank**-0.5)
        dt = torch.exp(torch.rand(inner) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3)).clamp(min=1e-4)
        init.copy_(self.dt_proj.bias, dt + torch.log(-torch.expm1(-dt)))  # softplus⁻¹(dt)
        init.zeros_(self.modulation.weight)
        init.zeros_(self.modulation.bias)

    def mix(self, x: Tensor) -> Tensor:
        """Mamba mixer over sequences x (N, T, dim) scanned both ways → (N, T, inner)."""
        length = x.shape[1]
        both = torch.cat([x, x.flip(1)])  # the backward scan is the forward scan of the reversed clip
        u, z = self.in_proj(self.norm(both)).transpose(1, 2).chunk(2, dim=1)  # (2N, inner, T) each
        u = F.silu(self.conv1d(u)[..., :length])  # causal: left padding only
        dt, B, C = self.x_proj(u.transpose(1, 2)).split(
            [self.dt_rank, self.A_log.shape[1], self.A_log.shape[1]], dim=-1
        )
        y = selective_scan(
            u,
            (dt @ self.dt_proj.weight.T).transpose(1, 2),
            -torch.exp(self.A_log.float()),
            B.transpose(1, 2),
            C.transpose(1, 2),
            self.D.float(),
            z,
            delta_bias=self.dt_proj.bias.float(),
            delta_softplus=True,
        ).transpose(1, 2)
        forward, backward = y.chunk(2)
        return forward + backward.flip(1)

    def forward(self, x: Tensor) -> Tensor:
        batch, length, dim = x.shape
        patches = video_patches(x, self.frames, self.num_prefix, "Mamba adapter")
        n = length - self.num_prefix
        # (videos·T, n, dim) → one sequence over time per spatial position: (videos·n, T, dim)
        seq = patches.reshape(batch // self.frames, self.frames, n, dim).transpose(1, 2).flatten(0, 1)
        scale, shift = self.modulation(self.mix(seq).to(x.dtype)).chunk(2, dim=-1)
        scale, shift = (
            t.unflatten(0, (batch // self.frames, n)).transpose(1, 2).reshape(batch, n, dim)
            for t in (scale, shift)
        )
        return torch.cat([x[:, : self.num_prefix], patches * (1 + scale) + shift], dim=1)


__all__ = ["MambaAdapter", "selective_scan", "video_patches"]
