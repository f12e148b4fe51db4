"""Stage 0 of the starter: a miniature image-language foundation model for the synthetic world.

The anchors start from a vision encoder that already understands images (CLIP, SigLIP). Ours starts
from scratch, so before any LLaVA stage the vision tower and the connector (a resampler with one
query per palette colour plus a global one, and a learned temporal embedding) are pretrained with
supervised heads on what the world's questions ask: per colour slot its presence, shape, size,
direction, speed, late appearance, disappearance and colour change; globally the shape counts at the
start and the end (`clips.slot_labels`). The heads are thrown away; the tower and the connector go
into the video model, whose projector then only has to map well-organised slot tokens into the LM.
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

from videollm.model.connectors import ConnectorConfig, build_connector
from videollm.model.frames import FrameTransform, preprocess_frames
from videollm.starter.clips import GLOBAL_HEADS, IGNORE, NUM_SLOTS, SLOT_HEADS, Clip, codec_noise, make_clip, slot_labels

IMAGE_SIZE = 64
PATCH_SIZE = 8
MEAN = STD = (0.5, 0.5, 0.5)
VISION_CONFIG: dict[str, Any] = {
    "model_type": "siglip_vision_model",
    "hidden_size": 96,
    "intermediate_size": 384,
    "num_hidden_layers": 3,
    "num_attention_heads": 3,
    "image_size": IMAGE_SIZE,
    "patch_size": PATCH_SIZE,
    "vision_use_head": False,
}
CONNECTOR: dict[str, Any] = {
    "type": "resampler",
    "num_queries": NUM_SLOTS,
    "num_layers": 3,
    "temporal_embed": "learned",
    "max_frames": 32,
}
FRAME_TRANSFORM = FrameTransform(size=(IMAGE_SIZE, IMAGE_SIZE), mean=MEAN, std=STD)


def build_tower(vision_config: dict[str, Any] = VISION_CONFIG) -> nn.Module:
    """The vision tower exactly as `VideoLLMModel` builds it (`AutoModel.from_config`), so weights move over."""
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.for_model(**vision_config)
    return AutoModel.from_config(config)


class VisionPretrainer(nn.Module):
    """Vision tower + connector + throw-away linear heads over the connector's slot tokens."""

    def __init__(self, vision_config: dict[str, Any] = VISION_CONFIG, connector: dict[str, Any] = CONNECTOR):
        super().__init__()
        self.vision_tower = build_tower(vision_config)
        dim = vision_config["hidden_size"]
        cfg = ConnectorConfig.from_dict(connector)
        if cfg.stage != "pre" or cfg.type != "resampler" or cfg.num_queries != NUM_SLOTS or cfg.per_frame:
            raise ValueError(
                f"vision pretraining reads {NUM_SLOTS} slot tokens per video: use a per-video resampler connector "
                f"with num_queries={NUM_SLOTS} before the projector, got {cfg.to_dict()}"
            )
        self.connector = build_connector(cfg, dim, dim)
        self.grid = IMAGE_SIZE // PATCH_SIZE
        heads = {**SLOT_HEADS, **GLOBAL_HEADS}
        self.heads = nn.ModuleDict({name: nn.Linear(dim, n) for name, n in heads.items()})

    def slot_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) → (B, NUM_SLOTS, dim): the connector's tokens, as the video model computes them."""
        b, t = pixels.shape[:2]
        hidden = self.vision_tower(pixels.flatten(0, 1), output_hidden_states=True).hidden_states[-1]
        feats = hidden.unflatten(0, (b, t)).unflatten(2, (self.grid, self.grid))
        return torch.stack([self.connector(clip) for clip in feats])

    def forward(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        tokens = self.slot_tokens(pixels)
        return {name: head(tokens) for name, head in self.heads.items()}


def clip_batch(clips: list[Clip], rng: np.random.Generator | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Pixel values (with codec noise when `rng` is given) and stacked slot labels of some clips."""
    frames = [codec_noise(c.frames, rng) if rng is not None else c.frames for c in clips]
    pixels = torch.stack([preprocess_frames(f, FRAME_TRANSFORM) for f in frames])
    labels = [slot_labels(c.states) for c in clips]
    return pixels, {k: torch.from_numpy(np.stack([lab[k] for lab in labels])) for k in labels[0]}


def slot_loss(logits: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]) -> torch.Tensor:
    losses = [
        F.cross_entropy(logits[k].flatten(0, 1), labels[k].flatten(), ignore_index=IGNORE)
        for k in logits
        if (labels[k] != IGNORE).any()
    ]
    return torch.stack(losses).sum()


@torch.no_grad()
def slot_accuracy(model: VisionPretrainer, clips: list[Clip], batch_size: int = 32) -> dict[str, float]:
    """Per-head accuracy (%) over the labelled slots of `clips`."""
    model.eval()
    hits: dict[str, list[int]] = {}
    for i in range(0, len(clips), batch_size):
        pixels, labels = clip_batch(clips[i : i + batch_size], None)
        logits = model(pixels)
        for k, lab in labels.items():
            mask = lab != IGNORE
            ok = (logits[k].argmax(-1) == lab)[mask]
            h = hits.setdefault(k, [0, 0])
            h[0] += int(ok.sum())
            h[1] += int(mask.sum())
    model.train()
    return {k: 100.0 * a / max(n, 1) for k, (a, n) in hits.items()}


def clip_stream(seed: int, split: str, num_frames: int, start: int = 0) -> Iterator[Clip]:
    index = start
    while True:
        yield make_clip(seed, split, index, num_frames=num_frames)
        index += 1


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
    on_eval: Callable[[VisionPretrainer, list[dict[str, Any]]], None] | None = None,
) -> tuple[VisionPretrainer, list[dict[str, Any]]]:
    """Train tower + connector + heads on fresh clips of the world's train split; returns the model and its curve."""
    torch.manual_seed(seed)
    model = VisionPretrainer()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    held_out = [make_clip(world_seed + 1000, "test", i, num_frames=num_frames) for i in range(eval_clips)]
    stream = clip_stream(world_seed, "train", num_frames)
    rng = np.random.default_rng(seed)
    curve: list[dict[str, Any]] = []
    start = time.perf_counter()
    for step in range(1, steps + 1):
        pixels, labels = clip_batch([next(stream) for _ in range(batch_size)], rng)
        loss = slot_loss(model(pixels), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % eval_every == 0 or step == steps:
            acc = slot_accuracy(model, held_out)
            point = {"step": step, "clips": step * batch_size, "loss": float(loss), "minutes": (time.perf_counter() - start) / 60, "accuracy": acc}
            curve.append(point)
            log(
                f"vision step {step}/{steps} loss {float(loss):.3f} {point['minutes']:.1f} min | "
                + " ".join(f"{k} {v:.0f}" for k, v in acc.items())
            )
            if on_eval is not None:
                on_eval(model, curve)
    return model, curve
