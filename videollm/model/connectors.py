"""Connectors: the video-token strategy — per-frame visual tokens → the tokens the LLM sees.

Contract shared by every connector (the model, the processor and the vLLM plugin rely on it):

- `ConnectorConfig` is a plain dataclass stored in `VideoLLMConfig.connector` as a dict.
- `build_connector(cfg, vision_dim, text_dim)` returns a `Connector` module.
- `Connector.stage` is "pre" (runs on vision-encoder features, before the projector; its output
  dim is `vision_dim`) or "post" (runs on projected features; output dim `text_dim`).
- `Connector.forward(x, timestamps=None)`: x is one video's features, T×h×w×D (frame-major grid),
  timestamps a length-T float tensor (seconds) or None. Returns N×D, N == `num_tokens(T, h, w)`.
- `num_tokens(cfg, num_frames, grid_h, grid_w) -> int` is pure (no module, no weights) so the
  processor can expand placeholders without building the model. Newline / separator tokens that
  the model appends (config `newline`) are counted by the model's `video_num_tokens`, not here.

Each connector follows the definition of the model it is named after (its *anchor*):

| type                  | tokens for T frames of an h×w grid          | anchor                          |
|-----------------------|---------------------------------------------|---------------------------------|
| `frames`              | T·h·w                                       | Video-LLaVA                     |
| `spatial_pool`        | T·⌈h/s⌉·⌈w/s⌉                               | LLaVA-OneVision, LLaVA-NeXT-Video |
| `spatiotemporal_pool` | T + h·w                                     | Video-ChatGPT                   |
| `pool3d`              | min(t,T)·min(h',h)·min(w',w)                | PLLaVA                          |
| `slowfast`            | slow frames ⌈h/s⌉·⌈w/s⌉, fast ⌈h/f⌉·⌈w/f⌉   | LLaVA-Video                     |
| `resampler`           | k (per video) or T·k (per frame)            | VideoChat2 Q-Former, LLaMA-VID  |
| `token_merge`         | min(budget, T·h·w)                          | Chat-UniVi / ToMe               |
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TYPES = ("frames", "spatial_pool", "spatiotemporal_pool", "pool3d", "slowfast", "resampler", "token_merge")
MODES = ("avg", "max", "bilinear")
STAGES = ("pre", "post")
TEMPORAL_EMBEDS = ("learned", "sinusoidal")

# Where each anchor runs its reduction: on vision features (pre) or on projected features (post).
ANCHOR_STAGE = {
    "frames": "post",  # Video-LLaVA: every projected patch token
    "spatial_pool": "post",  # LLaVA-OneVision (LLaVA-NeXT-Video pools pre: say stage="pre")
    "spatiotemporal_pool": "pre",  # Video-ChatGPT pools CLIP features, then projects
    "pool3d": "post",  # PLLaVA pools after the projector
    "slowfast": "post",  # LLaVA-Video pools projected features (get_2dPool after mm_projector)
    "resampler": "pre",  # Q-Former / LLaMA-VID query the vision features
    "token_merge": "pre",  # Chat-UniVi merges visual tokens before the projector
}

# The fields each type reads (besides type, stage, temporal_embed): what `to_dict` writes.
TYPE_FIELDS = {
    "frames": (),
    "spatial_pool": ("mode", "stride"),
    "spatiotemporal_pool": (),
    "pool3d": ("t", "h", "w"),
    "slowfast": ("mode", "stride", "slow_every", "fast_stride"),
    "resampler": ("num_queries", "per_frame", "num_layers", "num_heads"),
    "token_merge": ("budget",),
}
_MODE_ALIASES = {"average": "avg", "mean": "avg"}  # LLaVA-NeXT-Video spells it "average"


@dataclass(frozen=True)
class ConnectorConfig:
    """Which connector and its knobs; the default is LLaVA-OneVision's (bilinear ½ after the projector)."""

    type: str = "spatial_pool"
    # spatial_pool / slowfast: 2-D pooling of each frame's grid
    mode: str = "bilinear"
    stride: int = 2
    # "pre" | "post"; None = where the type's anchor runs it (ANCHOR_STAGE)
    stage: str | None = None
    # pool3d: target (frames, height, width) of PLLaVA's adaptive 3-D average pool (never upsamples)
    t: int = 16
    h: int = 12
    w: int = 12
    # slowfast: every `slow_every`-th frame (0, k, 2k, ...) pooled by `stride`, the others by `fast_stride`
    slow_every: int = 10
    fast_stride: int = 4
    # resampler: `num_queries` learned queries per video, or per frame with `per_frame`
    num_queries: int = 32
    per_frame: bool = False
    num_layers: int = 2
    num_heads: int | None = None  # None: largest of 16/8/4/2/1 dividing the dim with head dim ≥ 32
    # token_merge: tokens kept for the whole video
    budget: int = 256
    # optional frame-order signal added to the features before the reduction: None | learned | sinusoidal
    temporal_embed: str | None = None
    max_frames: int = 64  # size of the "learned" frame-index table

    def __post_init__(self) -> None:
        def bad(field: str, value: Any, fix: str) -> ValueError:
            return ValueError(f"connector.{field}={value!r} is invalid: {fix}")

        if self.type not in TYPES:
            raise bad("type", self.type, f"use one of {', '.join(TYPES)}")
        mode = _MODE_ALIASES.get(self.mode, self.mode)
        if mode not in MODES:
            raise bad("mode", self.mode, f"use one of {', '.join(MODES)}")
        object.__setattr__(self, "mode", mode)
        if self.stage is None:
            object.__setattr__(self, "stage", ANCHOR_STAGE[self.type])
        if self.stage not in STAGES:
            raise bad("stage", self.stage, "use 'pre' (before the projector) or 'post' (after it)")
        if self.temporal_embed not in (None, *TEMPORAL_EMBEDS):
            raise bad(
                "temporal_embed", self.temporal_embed, f"use null or one of {', '.join(TEMPORAL_EMBEDS)}"
            )
        positive = (
            "stride",
            "t",
            "h",
            "w",
            "slow_every",
            "fast_stride",
            "num_queries",
            "num_layers",
            "budget",
        )
        for name in (*positive, "max_frames"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(name, value, "it must be a positive integer")
        if self.num_heads is not None and (not isinstance(self.num_heads, int) or self.num_heads < 1):
            raise bad("num_heads", self.num_heads, "it must be a positive integer or null")

    def to_dict(self) -> dict[str, Any]:
        """The fields this type uses, as stored in `VideoLLMConfig.connector`."""
        d: dict[str, Any] = {"type": self.type, "stage": self.stage}
        d.update({name: getattr(self, name) for name in TYPE_FIELDS[self.type]})
        d["temporal_embed"] = self.temporal_embed
        if self.temporal_embed == "learned":
            d["max_frames"] = self.max_frames
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | ConnectorConfig | None) -> ConnectorConfig:
        if d is None:
            return cls()
        if isinstance(d, ConnectorConfig):
            return d
        if not isinstance(d, dict):
            raise ValueError(f"connector config must be a dict like {{'type': 'spatial_pool'}}, got {d!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"connector config has unknown field(s) {unknown}; known fields: {sorted(known)}"
            )
        return cls(**d)


# Named configs of the anchors: `ConnectorConfig` values a user can ask for by name.
PRESETS: dict[str, ConnectorConfig] = {
    "llava-onevision": ConnectorConfig(type="spatial_pool", mode="bilinear", stride=2, stage="post"),
    "llava-next-video": ConnectorConfig(type="spatial_pool", mode="avg", stride=2, stage="pre"),
    "video-llava": ConnectorConfig(type="frames"),
    "video-chatgpt": ConnectorConfig(type="spatiotemporal_pool"),
    "pllava": ConnectorConfig(type="pool3d", t=16, h=12, w=12),
    "llava-video": ConnectorConfig(type="slowfast", mode="bilinear", stride=2, slow_every=10, fast_stride=4),
    "qformer": ConnectorConfig(type="resampler", num_queries=32, per_frame=False),
    "llama-vid": ConnectorConfig(type="resampler", num_queries=2, per_frame=True),
    "chat-univi": ConnectorConfig(type="token_merge", budget=256),
}
DEFAULT = PRESETS["llava-onevision"]


def _pooled(n: int, stride: int) -> int:
    return -(-n // stride)  # ceil(n / stride): partial windows at the border are kept


def _slow_frames(num_frames: int, slow_every: int) -> int:
    return _pooled(num_frames, slow_every)  # frames 0, k, 2k, ... are slow


def num_tokens(cfg: ConnectorConfig, num_frames: int, grid_h: int, grid_w: int) -> int:
    """Tokens the connector emits for `num_frames` frames of a `grid_h`×`grid_w` patch grid."""
    cfg = ConnectorConfig.from_dict(cfg)
    for name, value in (("num_frames", num_frames), ("grid_h", grid_h), ("grid_w", grid_w)):
        if value < 1:
            raise ValueError(f"{name}={value}: a video needs at least one frame of at least one patch")
    T, h, w = num_frames, grid_h, grid_w
    if cfg.type == "frames":
        return T * h * w
    if cfg.type == "spatial_pool":
        return T * _pooled(h, cfg.stride) * _pooled(w, cfg.stride)
    if cfg.type == "spatiotemporal_pool":
        return T + h * w
    if cfg.type == "pool3d":
        return min(cfg.t, T) * min(cfg.h, h) * min(cfg.w, w)
    if cfg.type == "slowfast":
        slow = _slow_frames(T, cfg.slow_every)
        per_slow = _pooled(h, cfg.stride) * _pooled(w, cfg.stride)
        per_fast = _pooled(h, cfg.fast_stride) * _pooled(w, cfg.fast_stride)
        return slow * per_slow + (T - slow) * per_fast
    if cfg.type == "resampler":
        return cfg.num_queries * (T if cfg.per_frame else 1)
    if cfg.type == "token_merge":
        return min(cfg.budget, T * h * w)
    raise AssertionError(cfg.type)  # unreachable: ConnectorConfig validated the type


def pool2d(x: Tensor, mode: str, stride: int) -> Tensor:
    """2-D pooling of each frame: T×h×w×D → T×⌈h/s⌉×⌈w/s⌉×D.

    `bilinear` is LLaVA-OneVision's `apply_pooling` (interpolate to the ceil size); `avg`/`max` are
    LLaVA-NeXT-Video's pooler with `ceil_mode`, identical to it on grids divisible by the stride and
    keeping the last row/column (averaged over the patches present) on grids that are not.
    """
    if stride == 1:
        return x
    y = x.permute(0, 3, 1, 2)
    if mode == "bilinear":
        size = [_pooled(x.shape[1], stride), _pooled(x.shape[2], stride)]
        y = F.interpolate(y, size=size, mode="bilinear")
    elif mode == "avg":
        y = F.avg_pool2d(y, kernel_size=stride, stride=stride, ceil_mode=True)
    else:
        y = F.max_pool2d(y, kernel_size=stride, stride=stride, ceil_mode=True)
    return y.permute(0, 2, 3, 1)


def sinusoid(positions: Tensor, dim: int) -> Tensor:
    """Transformer sinusoids of arbitrary (float) positions: L → L×dim (also the starter's initial
    learned temporal table)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device) / max(half, 1))
    angles = positions.float()[:, None] * freqs[None, :]
    emb = torch.cat([angles.sin(), angles.cos()], dim=-1)
    return F.pad(emb, (0, dim - 2 * half))


class TemporalEmbedding(nn.Module):
    """Frame-order signal added to every token of a frame so order-blind reductions can see time.

    Zero at initialisation (a zero table, or a zero gate on fixed sinusoids of the timestamps), so
    switching it on leaves a pretrained model's outputs unchanged until it is trained.
    """

    def __init__(self, kind: str, dim: int, max_frames: int):
        super().__init__()
        self.kind = kind
        self.max_frames = max_frames
        if kind == "learned":
            self.embedding = nn.Parameter(torch.zeros(max_frames, dim))
        else:
            self.gate = nn.Parameter(torch.zeros(()))

    def reset_parameters(self) -> None:
        from transformers import initialization as init

        init.zeros_(self.embedding if self.kind == "learned" else self.gate)

    def forward(self, x: Tensor, timestamps: Tensor | None) -> Tensor:
        frames, dim = x.shape[0], x.shape[-1]
        if self.kind == "learned":
            if frames > self.max_frames:
                raise ValueError(
                    f"{frames} frames but the learned temporal embedding has {self.max_frames} rows; "
                    f"sample at most {self.max_frames} frames or raise connector.max_frames"
                )
            emb = self.embedding[:frames]
        else:
            positions = (
                torch.arange(frames, device=x.device) if timestamps is None else timestamps.to(x.device)
            )
            emb = self.gate * sinusoid(positions, dim)
        return x + emb[:, None, None, :].to(x.dtype)


class Connector(nn.Module):
    """Base of every connector: validates the input, adds the optional temporal embedding, reduces."""

    type: ClassVar[str]

    def __init__(self, cfg: ConnectorConfig, dim: int):
        super().__init__()
        self.cfg = cfg
        self.stage = cfg.stage
        self.dim = dim
        self.temporal = (
            TemporalEmbedding(cfg.temporal_embed, dim, cfg.max_frames) if cfg.temporal_embed else None
        )

    def num_tokens(self, num_frames: int, grid_h: int, grid_w: int) -> int:
        return num_tokens(self.cfg, num_frames, grid_h, grid_w)

    def forward(self, x: Tensor, timestamps: Tensor | None = None) -> Tensor:
        if x.ndim != 4 or x.shape[-1] != self.dim or 0 in x.shape[:3]:
            raise ValueError(
                f"connector {self.cfg.type!r} ({self.stage}-projector) takes one video's features as a "
                f"T×h×w×{self.dim} tensor with T, h, w ≥ 1; got shape {tuple(x.shape)}"
            )
        if timestamps is not None and timestamps.shape != (x.shape[0],):
            raise ValueError(
                f"timestamps must hold one time per frame ({x.shape[0]}), got {tuple(timestamps.shape)}"
            )
        if self.temporal is not None:
            x = self.temporal(x, timestamps)
        return self.reduce(x)

    def reduce(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def reset_parameters(self) -> None:
        """Re-initialise this connector's own weights (the model's `_init_weights` calls it).

        Uses transformers' init functions, which skip tensors already loaded from a checkpoint.
        """
        if self.temporal is not None:
            self.temporal.reset_parameters()

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.cfg.to_dict().items())


class FramesConnector(Connector):
    """Video-LLaVA: every patch token of every frame, frame after frame."""

    type = "frames"

    def reduce(self, x: Tensor) -> Tensor:
        return x.reshape(-1, x.shape[-1])


class SpatialPoolConnector(Connector):
    """LLaVA-OneVision (bilinear ½ after the projector) / LLaVA-NeXT-Video (avg ½ before it)."""

    type = "spatial_pool"

    def reduce(self, x: Tensor) -> Tensor:
        return pool2d(x, self.cfg.mode, self.cfg.stride).reshape(-1, x.shape[-1])


class SpatioTemporalPoolConnector(Connector):
    """Video-ChatGPT: T temporal tokens (spatial mean of each frame), then h·w spatial tokens (mean over time)."""

    type = "spatiotemporal_pool"

    def reduce(self, x: Tensor) -> Tensor:
        temporal = x.mean(dim=(1, 2))
        spatial = x.mean(dim=0).reshape(-1, x.shape[-1])
        return torch.cat([temporal, spatial], dim=0)


class Pool3dConnector(Connector):
    """PLLaVA: adaptive 3-D average pool of the (T, h, w) feature volume to (t, h', w')."""

    type = "pool3d"

    def reduce(self, x: Tensor) -> Tensor:
        T, h, w, D = x.shape
        size = (min(self.cfg.t, T), min(self.cfg.h, h), min(self.cfg.w, w))
        y = F.adaptive_avg_pool3d(x.permute(3, 0, 1, 2)[None], size)[0]
        return y.permute(1, 2, 3, 0).reshape(-1, D)


class SlowFastConnector(Connector):
    """LLaVA-Video: frames 0, k, 2k, ... pooled by `stride` (slow), the others by `fast_stride` (fast).

    Tokens stay in frame order, as LLaVA-Video interleaves them.
    """

    type = "slowfast"

    def reduce(self, x: Tensor) -> Tensor:
        D = x.shape[-1]
        slow = pool2d(x[:: self.cfg.slow_every], self.cfg.mode, self.cfg.stride).flatten(1, 2)
        fast = pool2d(x, self.cfg.mode, self.cfg.fast_stride).flatten(1, 2)
        pieces = [
            slow[i // self.cfg.slow_every] if i % self.cfg.slow_every == 0 else fast[i]
            for i in range(x.shape[0])
        ]
        return torch.cat(pieces, dim=0).reshape(-1, D)


def _default_heads(dim: int) -> int:
    return next(h for h in (16, 8, 4, 2, 1) if dim % h == 0 and (dim // h >= 32 or h == 1))


class CrossAttentionBlock(nn.Module):
    """Pre-norm block: queries attend to [context; queries] (Perceiver-resampler style), then an MLP."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.o_proj = nn.Linear(dim, dim)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def _heads(self, t: Tensor) -> Tensor:
        B, L, D = t.shape
        return t.view(B, L, self.num_heads, D // self.num_heads).transpose(1, 2)

    def forward(self, queries: Tensor, context: Tensor) -> Tensor:
        q = self.norm_q(queries)
        kv = torch.cat([self.norm_kv(context), q], dim=1)
        attn = F.scaled_dot_product_attention(
            self._heads(self.q_proj(q)), self._heads(self.k_proj(kv)), self._heads(self.v_proj(kv))
        )
        queries = queries + self.o_proj(attn.transpose(1, 2).flatten(2))
        return queries + self.mlp(self.norm_mlp(queries))


class ResamplerConnector(Connector):
    """VideoChat2 Q-Former / LLaMA-VID style: learned queries cross-attend to the frame tokens.

    Per video, `num_queries` queries read all T·h·w tokens; per frame, each frame gets its own
    `num_queries` tokens from its h·w tokens. Frame order is visible only through `temporal_embed`.
    """

    type = "resampler"

    def __init__(self, cfg: ConnectorConfig, dim: int):
        super().__init__(cfg, dim)
        heads = cfg.num_heads or _default_heads(dim)
        if dim % heads:
            raise ValueError(
                f"connector.num_heads={heads} does not divide the {cfg.stage}-projector dim {dim}"
            )
        self.queries = nn.Parameter(torch.empty(cfg.num_queries, dim))
        self.layers = nn.ModuleList([CrossAttentionBlock(dim, heads) for _ in range(cfg.num_layers)])
        self.norm = nn.LayerNorm(dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        from transformers import initialization as init

        super().reset_parameters()
        init.normal_(self.queries, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                init.normal_(module.weight, std=0.02)
                init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                init.ones_(module.weight)
                init.zeros_(module.bias)

    def reduce(self, x: Tensor) -> Tensor:
        T, h, w, D = x.shape
        context = x.reshape(T, h * w, D) if self.cfg.per_frame else x.reshape(1, T * h * w, D)
        queries = self.queries[None].expand(context.shape[0], -1, -1).to(x.dtype)
        for layer in self.layers:
            queries = layer(queries, context)
        return self.norm(queries).reshape(-1, D)


@torch.no_grad()
def _best_partners(a: Tensor, b: Tensor, chunk: int = 2048) -> tuple[Tensor, Tensor]:
    """For each row of `a`, the highest cosine similarity to a row of `b` and that row's index.

    Computed `chunk` rows at a time, so memory stays chunk×len(b) however long the video is.
    """
    a, b = F.normalize(a.float(), dim=-1), F.normalize(b.float(), dim=-1)
    pieces = [(rows @ b.T).max(dim=-1) for rows in a.split(chunk)]
    return torch.cat([p.values for p in pieces]), torch.cat([p.indices for p in pieces])


def _merge_step(a: Tensor, b: Tensor, src: Tensor, keep: Tensor, dst: Tensor, share: Tensor) -> Tensor:
    """A[keep] followed by B with A[src] merged into B[dst] (share = s_src / S_dst).

    The weighted mean is written as b + Σ s_i (a_i - b) / S so B tokens that absorb nothing stay
    bit-identical.
    """
    w = share.to(a.dtype).reshape(-1, *([1] * (a.ndim - 1)))
    return torch.cat([a[keep], b.index_add(0, dst, (a[src] - b[dst]) * w)])


def merge_tokens(x: Tensor, budget: int) -> Tensor:
    """ToMe bipartite soft matching over all tokens of a video (T×L×D) until `budget` remain.

    Each round splits the tokens alternately into sets A and B, matches every A token to its most
    cosine-similar B token anywhere in the video, and merges the best-matched A tokens into their
    partners (size-weighted mean: a merged token is the average of everything it absorbed).
    The alternation runs along time at each patch position (position-major order), so the same
    content in consecutive frames lands on opposite sides and merges first: temporal redundancy is
    what video merging removes. The matching is discrete and deterministic (stable sorts); the
    merged values are differentiable in the features. Output is in frame order (mean frame-major
    index of each merged group). Matching is global, so a round costs O(N²·D) for N tokens.
    """
    T, L, D = x.shape
    x = x.transpose(0, 1).reshape(T * L, D)  # position-major: patch j of frames 0..T-1, then patch j+1
    idx = torch.arange(T * L, device=x.device)
    split_key = idx.float()  # position-major index, averaged over merged groups
    time_key = ((idx % T) * L + idx // T).float()  # frame-major index: the output order
    size = torch.ones(T * L, device=x.device)  # tokens absorbed so far (float32 whatever x's dtype)
    while x.shape[0] > budget:
        order = torch.argsort(split_key, stable=True)
        x, size, split_key, time_key = x[order], size[order], split_key[order], time_key[order]
        a, b = x[::2], x[1::2]
        r = min(x.shape[0] - budget, a.shape[0])
        best, partner = _best_partners(a, b)
        ranked = torch.argsort(best, descending=True, stable=True)
        src, keep, dst = ranked[:r], ranked[r:], partner[ranked[:r]]
        size_a, size_b = size[::2], size[1::2]
        new_size_b = size_b.index_add(0, dst, size_a[src])
        plan = (src, keep, dst, size_a[src] / new_size_b[dst])
        x = _merge_step(a, b, *plan)
        split_key = _merge_step(split_key[::2], split_key[1::2], *plan)
        time_key = _merge_step(time_key[::2], time_key[1::2], *plan)
        size = torch.cat([size_a[keep], new_size_b])
    return x[torch.argsort(time_key, stable=True)]


class TokenMergeConnector(Connector):
    """Chat-UniVi / ToMe: merge similar tokens across all frames to a fixed budget (no weights)."""

    type = "token_merge"

    def reduce(self, x: Tensor) -> Tensor:
        return merge_tokens(x.flatten(1, 2), self.cfg.budget)


CONNECTORS: dict[str, type[Connector]] = {
    cls.type: cls
    for cls in (
        FramesConnector,
        SpatialPoolConnector,
        SpatioTemporalPoolConnector,
        Pool3dConnector,
        SlowFastConnector,
        ResamplerConnector,
        TokenMergeConnector,
    )
}


def build_connector(
    cfg: ConnectorConfig | dict[str, Any] | None, vision_dim: int, text_dim: int
) -> Connector:
    """The connector module for `cfg`, working in the vision dim (stage "pre") or the text dim ("post")."""
    cfg = ConnectorConfig.from_dict(cfg)
    return CONNECTORS[cfg.type](cfg, vision_dim if cfg.stage == "pre" else text_dim)
