"""Stage 0 of the starter: a miniature image-language foundation model for the synthetic world.

The anchors start from a vision encoder that already understands images (CLIP, SigLIP). Ours starts
from scratch, in two steps. `pretrain_tower` is the image stage: single frames, dense labels per patch
(colour, shape, size and centre of the object covering it) and per object (its patches pooled, as the
connector's attention later pools them); the position table starts as 2-D sinusoids (MAE's choice) so
attention knows which patches are neighbours from the first step. `pretrain_vision` is the clip stage:
the tower, its temporal adapters (ST-Adapters before every block, zero-initialised here) and the
connector (a resampler with one query per described field and a learned temporal embedding) learn to
*write a description*: each connector token classifies the word it stands for (`clips.slot_words`: per
palette colour the object's colour, size, shape, direction, speed and event; the counts at the start
and the end).

Why the adapters: a resampler alone cannot tell where an object is *when* (its context is features +
time, summed), and motion stayed at the majority class. With the adapters every object patch of every
frame is also classified with its object's motion, speed and event (`clips.patch_words`), which the
adapters compute from the neighbouring frames; motion becomes a local feature that the connector pools
like colour. The heads are thrown away; tower, adapters and connector go into the video model, and the
projector is first fitted to map each token onto the LM's own embedding of its word (`fit_projector`),
so the frozen LM starts by reading something close to text.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from videollm.data.synthetic import video_rngs
from videollm.data.world import SHAPES, SIZES, FrameState, make_scene, render_states, scene_states
from videollm.model.adapters import apply_adapters, frames_per_video, is_temporal_adapter_key
from videollm.model.connectors import ConnectorConfig, build_connector, sinusoid
from videollm.model.frames import FrameTransform, preprocess_frames
from videollm.starter.clips import (
    COLORS,
    FIELDS,
    IGNORE,
    NUM_SLOT_TOKENS,
    NUM_TOKENS,
    PATCH_FIELDS,
    SLOT_FIELDS,
    WORDS,
    Clip,
    FrameTargets,
    codec_noise,
    frame_targets,
    make_clip,
    patch_words,
    slot_geometry,
    slot_labels,
)

IMAGE_SIZE = 64
PATCH_SIZE = 8
MEAN = STD = (0.5, 0.5, 0.5)
VISION_CONFIG: dict[str, Any] = {
    "model_type": "siglip_vision_model",
    "hidden_size": 128,
    "intermediate_size": 512,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "image_size": IMAGE_SIZE,
    "patch_size": PATCH_SIZE,
    "vision_use_head": False,
}
CONNECTOR: dict[str, Any] = {
    "type": "resampler",
    "num_queries": NUM_TOKENS,
    "num_layers": 3,
    "temporal_embed": "learned",
    "max_frames": 32,
}
# ST-Adapters in every tower block (depthwise 3-D conv over time × space): each patch token sees its own
# neighbourhood in the neighbouring frames, so motion is a local feature the connector pools like colour.
# Five frames wide, so four blocks reach across all 8 frames (colour changes, appearances need that).
ADAPTER: dict[str, Any] = {"type": "st_adapter", "kernel_size": (5, 3, 3)}
TEMPORAL_STRETCH = 4.0  # frame index → sinusoid position: neighbouring frames differ even at low frequencies
TEMPORAL_SCALE = (
    8.0  # the table's amplitude, about the tower features' scale (std ≈ 7), so time is not drowned
)
GEOMETRY_SCALE = 8.0  # slot geometry targets in patches (canvas sides × grid), so errors are O(1)
TOWER_PARTS = ("vision_tower.", "patch_head.", "object_head.")  # what the image stage trains (but adapters)


def image_stage_param(name: str) -> bool:
    """Whether a `VisionPretrainer` weight belongs to the image stage: the tower and its frame heads, not the
    temporal adapters (single frames teach them nothing; they start, zero-initialised, in the clip stage)."""
    return name.startswith(TOWER_PARTS) and not is_temporal_adapter_key(name)


FRAME_TRANSFORM = FrameTransform(size=(IMAGE_SIZE, IMAGE_SIZE), mean=MEAN, std=STD)


def build_tower(vision_config: dict[str, Any] = VISION_CONFIG) -> nn.Module:
    """The vision tower exactly as `VideoLLMModel` builds it (`AutoModel.from_config`), so weights move over.

    Its position table starts as 2-D sinusoids (`sincos_positions`)."""
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.for_model(**vision_config)
    tower = AutoModel.from_config(config)
    grid = config.image_size // config.patch_size
    with torch.no_grad():
        tower.embeddings.position_embedding.weight.copy_(sincos_positions(grid, config.hidden_size))
    return tower


def sincos_positions(grid: int, dim: int) -> torch.Tensor:
    """(grid², dim) 2-D sine-cosine position table (x in the first half, y in the second), as MAE uses."""
    ys, xs = torch.meshgrid(torch.arange(grid).float(), torch.arange(grid).float(), indexing="ij")
    quarter = dim // 4
    freqs = 1.0 / 10000 ** (torch.arange(quarter).float() / quarter)

    def encode(p: torch.Tensor) -> torch.Tensor:
        angles = p.flatten()[:, None] * freqs[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    table = torch.cat([encode(xs), encode(ys)], dim=1)
    return F.pad(table, (0, dim - table.shape[1]))


class VisionPretrainer(nn.Module):
    """Vision tower + connector + throw-away linear heads over the connector's slot tokens."""

    def __init__(
        self,
        vision_config: dict[str, Any] = VISION_CONFIG,
        connector: dict[str, Any] = CONNECTOR,
        adapter: dict[str, Any] | None = ADAPTER,
    ):
        super().__init__()
        self.vision_tower = build_tower(vision_config)
        apply_adapters(self.vision_tower, adapter, None)  # as `VideoLLMModel` inserts them: same keys
        dim = vision_config["hidden_size"]
        cfg = ConnectorConfig.from_dict(connector)
        if cfg.stage != "pre" or cfg.type != "resampler" or cfg.num_queries != NUM_TOKENS or cfg.per_frame:
            raise ValueError(
                f"vision pretraining reads {NUM_TOKENS} description tokens per video: use a per-video resampler "
                f"connector with num_queries={NUM_TOKENS} before the projector, got {cfg.to_dict()}"
            )
        self.connector = build_connector(cfg, dim, dim)
        # The learned temporal table starts as sinusoids of the frame index (the model's own init is zero, so
        # that a pretrained model is unchanged by switching it on): frame order is visible from the first step.
        with torch.no_grad():
            table = self.connector.temporal.embedding
            table.copy_(TEMPORAL_SCALE * sinusoid(TEMPORAL_STRETCH * torch.arange(len(table)), dim))
        self.grid = vision_config["image_size"] // vision_config["patch_size"]
        self.head = nn.Linear(dim, len(WORDS))
        self.geometry_head = nn.Linear(dim, 6)  # every slot token: `clips.slot_geometry` of its slot
        self.motion_head = nn.Linear(dim, len(PATCH_FIELDS) * len(WORDS))  # every patch: `clips.patch_words`
        # Dense head on the tower's patch features: colour / shape / size of the object covering the patch
        # (+1, 0 = background) and that object's centre offset; object head on features pooled per object.
        self.patch_sizes = (len(COLORS) + 1, len(SHAPES) + 1, len(SIZES) + 1, 2)
        self.patch_head = nn.Linear(dim, sum(self.patch_sizes))
        self.object_sizes = (len(COLORS), len(SHAPES), len(SIZES))
        self.object_head = nn.Sequential(
            nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, sum(self.object_sizes))
        )

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) → (B, T, grid, grid, dim): the tower's last hidden states, as the video model selects them."""
        b, t = pixels.shape[:2]
        with frames_per_video(self.vision_tower, t):
            hidden = self.vision_tower(pixels.flatten(0, 1), output_hidden_states=True).hidden_states[-1]
        return hidden.unflatten(0, (b, t)).unflatten(2, (self.grid, self.grid))

    def slot_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) → (B, NUM_TOKENS, dim): the connector's tokens, as the video model computes them."""
        return torch.stack([self.connector(clip) for clip in self.features(pixels)])

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Word logits (B, NUM_TOKENS, len(WORDS))."""
        return self.head(self.slot_tokens(pixels))

    def frame_outputs(
        self, feats: torch.Tensor, weights: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Dense patch outputs of frame features (N, grid, grid, dim) and object logits of the features pooled
        with each frame's object weights (K_i, grid, grid): ([colour, shape, size, offset], [colour, shape, size])."""
        patches = list(self.patch_head(feats).split(self.patch_sizes, dim=-1))
        pooled = torch.cat([torch.einsum("kyx,yxd->kd", w, f) for w, f in zip(weights, feats, strict=True)])
        return patches, list(self.object_head(pooled).split(self.object_sizes, dim=-1))


def frame_loss(
    patches: list[torch.Tensor], objects: list[torch.Tensor], targets: list[FrameTargets]
) -> torch.Tensor:
    """Dense cross-entropy (colour, shape, size), centre-offset regression on object patches, and the
    per-object classification: the image stage's loss."""
    dense = torch.from_numpy(np.stack([t.patches for t in targets], axis=1))  # (5, N, grid, grid)
    labels = dense[:3].long()
    loss = sum(
        F.cross_entropy(lg.flatten(0, -2), lab.flatten()) for lg, lab in zip(patches[:3], labels, strict=True)
    )
    on = labels[0] > 0
    if on.any():
        loss = loss + F.smooth_l1_loss(patches[3][on], dense[3:].permute(1, 2, 3, 0)[on])
    obj = torch.from_numpy(np.concatenate([t.objects for t in targets]))
    if len(obj):
        loss = loss + sum(F.cross_entropy(lg, obj[:, k]) for k, lg in enumerate(objects))
    return loss


def clip_batch(clips: list[Clip], rng: np.random.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel values (with codec noise when `rng` is given) and word labels (B, NUM_TOKENS) of some clips."""
    frames = [codec_noise(c.frames, rng) if rng is not None else c.frames for c in clips]
    pixels = torch.stack([preprocess_frames(f, FRAME_TRANSFORM) for f in frames])
    return pixels, torch.from_numpy(np.stack([slot_labels(c.states) for c in clips]))


def geometry_loss(tokens: torch.Tensor, head: nn.Module, clips: list[Clip]) -> torch.Tensor:
    """Regression of every slot token onto its slot's geometry (first/last position and time) where the slot
    has an object: a rich, dense signal that teaches the queries to follow their object through time."""
    target = torch.from_numpy(np.stack([slot_geometry(c.states) for c in clips]))  # (B, colours, 7)
    slots = tokens[:, :NUM_SLOT_TOKENS].unflatten(1, (len(COLORS), len(SLOT_FIELDS)))
    pred = head(slots)  # (B, colours, fields, 6)
    present = target[..., 6] > 0
    if not present.any():
        return tokens.sum() * 0.0
    goal = (GEOMETRY_SCALE * target[..., :6])[:, :, None].expand_as(pred)
    return F.smooth_l1_loss(pred[present], goal[present])


def motion_loss(feats: torch.Tensor, head: nn.Module, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every object patch's motion, speed and event (`clips.patch_words`, (B, F, T, g, g))
    from the clip features (B, T, g, g, dim)."""
    logits = head(feats).unflatten(-1, (len(PATCH_FIELDS), len(WORDS)))  # B,T,g,g,F,W
    lab = labels.permute(0, 2, 3, 4, 1)  # B,T,g,g,F
    if not (lab != IGNORE).any():
        return feats.sum() * 0.0
    return F.cross_entropy(logits.flatten(0, -2), lab.flatten(), ignore_index=IGNORE)


def slot_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per token, averaged per field type so that the many 'none' slots do not dominate."""
    flat, lab = logits.flatten(0, 1), labels.flatten()
    present = lab != WORDS.index("none")
    weights = torch.where(present, 1.0, 0.25)[lab != IGNORE]
    ce = F.cross_entropy(flat[lab != IGNORE], lab[lab != IGNORE], reduction="none")
    return (ce * weights).sum() / weights.sum()


@torch.no_grad()
def slot_accuracy(model: VisionPretrainer, clips: list[Clip], batch_size: int = 32) -> dict[str, float]:
    """Accuracy (%) per field over the labelled tokens of present objects (and the counts), plus 'none' slots."""
    model.eval()
    hits: dict[str, list[int]] = {}
    fields = np.array(FIELDS)
    for i in range(0, len(clips), batch_size):
        pixels, labels = clip_batch(clips[i : i + batch_size], None)
        ok = (model(pixels).argmax(-1) == labels).numpy()
        lab = labels.numpy()
        for b in range(len(lab)):
            for j, f in enumerate(fields):
                if lab[b, j] == IGNORE:
                    continue
                key = "absent" if lab[b, j] == WORDS.index("none") and not f.startswith("count") else str(f)
                h = hits.setdefault(key, [0, 0])
                h[0] += int(ok[b, j])
                h[1] += 1
    model.train()
    return {k: 100.0 * a / max(n, 1) for k, (a, n) in sorted(hits.items())}


def clip_stream(seed: int, split: str, num_frames: int, start: int = 0) -> Iterator[Clip]:
    index = start
    while True:
        yield make_clip(seed, split, index, num_frames=num_frames)
        index += 1


def frame_stream(seed: int, split: str, rng: np.random.Generator, frames: int = 16) -> Iterator[FrameState]:
    """One random frame state of each successive clip of a world split: the image stage's data."""
    index = 0
    while True:
        scene_rng, _ = video_rngs(seed, split, index)
        yield scene_states(make_scene(scene_rng), frames)[int(rng.integers(frames))]
        index += 1


def frame_batch(
    states: list[FrameState], rng: np.random.Generator | None, grid: int
) -> tuple[torch.Tensor, list[FrameTargets]]:
    """Pixel values (N, 3, H, W) of rendered frames (codec noise when `rng` is given) and their targets."""
    pixels = render_states(states, IMAGE_SIZE)
    if rng is not None:
        pixels = codec_noise(pixels, rng)
    return preprocess_frames(pixels, FRAME_TRANSFORM), [frame_targets(st, IMAGE_SIZE, grid) for st in states]


def _weights(targets: list[FrameTargets]) -> list[torch.Tensor]:
    return [torch.from_numpy(t.weights) for t in targets]


@torch.no_grad()
def object_accuracy(
    model: VisionPretrainer, pixels: torch.Tensor, targets: list[FrameTargets]
) -> dict[str, float]:
    """Accuracy (%) of the per-object colour / shape / size heads on some frames."""
    was_training = model.training
    model.eval()
    feats = model.features(pixels[:, None])[:, 0]
    _, objects = model.frame_outputs(feats, _weights(targets))
    labels = torch.from_numpy(np.concatenate([t.objects for t in targets]))
    model.train(was_training)
    return {
        name: 100.0 * float((lg.argmax(-1) == labels[:, k]).float().mean())
        for k, (name, lg) in enumerate(zip(("color", "shape", "size"), objects, strict=True))
    }


def _cosine(opt: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = max(1, steps // 20)
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )


def pretrain_tower(
    steps: int,
    batch_size: int = 128,
    lr: float = 2e-3,
    world_seed: int = 0,
    seed: int = 0,
    eval_frames: int = 256,
    eval_every: int = 100,
    log: Callable[[str], None] = print,
    model: VisionPretrainer | None = None,
) -> tuple[VisionPretrainer, list[dict[str, Any]]]:
    """The image stage: tower + frame heads on single frames of the world's train split (one per clip).

    Returns the model (connector untouched) and the curve of held-out per-object accuracy."""
    torch.manual_seed(seed)
    model = model if model is not None else VisionPretrainer()
    model.train()
    params = [p for n, p in model.named_parameters() if image_stage_param(n)]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = _cosine(opt, steps)
    rng = np.random.default_rng(seed)
    held_rng = np.random.default_rng(seed + 1)
    held = frame_stream(world_seed + 1000, "test", held_rng)
    held_pixels, held_targets = frame_batch([next(held) for _ in range(eval_frames)], None, model.grid)
    stream = frame_stream(world_seed, "train", rng)
    curve: list[dict[str, Any]] = []
    start, evaluating = time.perf_counter(), 0.0
    for step in range(1, steps + 1):
        pixels, targets = frame_batch([next(stream) for _ in range(batch_size)], rng, model.grid)
        feats = model.features(pixels[:, None])[:, 0]
        loss = frame_loss(*model.frame_outputs(feats, _weights(targets)), targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % eval_every == 0 or step == steps:
            minutes = (time.perf_counter() - start - evaluating) / 60  # training time, evaluations left out
            tick = time.perf_counter()
            acc = object_accuracy(model, held_pixels, held_targets)
            evaluating += time.perf_counter() - tick
            point = {
                "step": step,
                "frames": step * batch_size,
                "loss": loss.item(),
                "minutes": minutes,
                "accuracy": acc,
            }
            curve.append(point)
            log(
                f"tower step {step}/{steps} loss {point['loss']:.3f} {point['minutes']:.1f} min | objects "
                + " ".join(f"{k} {v:.1f}" for k, v in acc.items())
            )
    return model, curve


def pretrain_vision(
    steps: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    num_frames: int = 8,
    world_seed: int = 0,
    seed: int = 0,
    eval_clips: int = 128,
    eval_every: int = 100,
    log: Callable[[str], None] = print,
    model: VisionPretrainer | None = None,
    tower_lr: float = 2e-4,
    frame_weight: float = 0.5,
    geometry_weight: float = 1.0,
    motion_weight: float = 1.0,
) -> tuple[VisionPretrainer, list[dict[str, Any]]]:
    """The clip stage: connector + word head (and the tower, at `tower_lr`, kept on its frame targets) write
    the description of fresh clips of the world's train split; returns the model and its curve."""
    torch.manual_seed(seed)
    model = model if model is not None else VisionPretrainer()
    model.train()
    tower = [p for n, p in model.named_parameters() if image_stage_param(n)]
    rest = [p for n, p in model.named_parameters() if not image_stage_param(n)]  # adapters learn at `lr`
    opt = torch.optim.AdamW(
        [{"params": rest, "lr": lr}, {"params": tower, "lr": tower_lr}], weight_decay=0.01
    )
    sched = _cosine(opt, steps)
    held_out = [make_clip(world_seed + 1000, "test", i, num_frames=num_frames) for i in range(eval_clips)]
    stream = clip_stream(world_seed, "train", num_frames)
    rng = np.random.default_rng(seed)
    curve: list[dict[str, Any]] = []
    start, evaluating = time.perf_counter(), 0.0
    for step in range(1, steps + 1):
        clips = [next(stream) for _ in range(batch_size)]
        pixels, labels = clip_batch(clips, rng)
        feats = model.features(pixels)
        tokens = torch.stack([model.connector(clip) for clip in feats])
        loss = slot_loss(model.head(tokens), labels) + geometry_weight * geometry_loss(
            tokens, model.geometry_head, clips
        )
        targets = [frame_targets(st, IMAGE_SIZE, model.grid) for c in clips for st in c.states]
        if frame_weight > 0:
            frames = feats.flatten(0, 1)
            loss = loss + frame_weight * frame_loss(*model.frame_outputs(frames, _weights(targets)), targets)
        if motion_weight > 0:
            t = len(clips[0].states)
            owners = [[tg.owners for tg in targets[i * t : (i + 1) * t]] for i in range(len(clips))]
            dense = torch.from_numpy(
                np.stack([patch_words(c.states, o) for c, o in zip(clips, owners, strict=True)])
            )
            loss = loss + motion_weight * motion_loss(feats, model.motion_head, dense)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % eval_every == 0 or step == steps:
            minutes = (time.perf_counter() - start - evaluating) / 60  # training time, evaluations left out
            tick = time.perf_counter()
            acc = slot_accuracy(model, held_out)
            evaluating += time.perf_counter() - tick
            point = {
                "step": step,
                "clips": step * batch_size,
                "loss": loss.item(),
                "minutes": minutes,
                "accuracy": acc,
            }
            curve.append(point)
            log(
                f"vision step {step}/{steps} loss {point['loss']:.3f} {point['minutes']:.1f} min | "
                + " ".join(f"{k} {v:.0f}" for k, v in acc.items())
            )
    return model, curve
