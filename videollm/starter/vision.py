"""Stage 0 of the starter: a miniature image-language foundation model for the synthetic world.

The anchors start from a vision encoder that already understands images (CLIP, SigLIP). Ours starts
from scratch, so before any LLaVA stage the vision tower and the connector (a resampler with one
query per described field and a learned temporal embedding) are pretrained to *write a description*:
each of the connector's tokens classifies the word it stands for (`clips.slot_words`: per palette
colour the object's colour, size, shape, direction, speed and event; the counts at the start and the
end). The word head is thrown away; the tower and the connector go into the video model, and the
projector is first fitted to map each token onto the LM's own embedding of its word
(`fit_projector`), so the frozen LM starts by reading something close to text.
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

from videollm.data.world import SHAPES, SIZES
from videollm.model.connectors import ConnectorConfig, build_connector
from videollm.model.frames import FrameTransform, preprocess_frames
from videollm.starter.clips import (
    COLORS,
    FIELDS,
    IGNORE,
    NUM_TOKENS,
    WORDS,
    Clip,
    codec_noise,
    make_clip,
    patch_labels,
    slot_labels,
)

IMAGE_SIZE = 64
PATCH_SIZE = 8
MEAN = STD = (0.5, 0.5, 0.5)
VISION_CONFIG: dict[str, Any] = {
    "model_type": "siglip_vision_model",
    "hidden_size": 64,
    "intermediate_size": 256,
    "num_hidden_layers": 3,
    "num_attention_heads": 2,
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
        if cfg.stage != "pre" or cfg.type != "resampler" or cfg.num_queries != NUM_TOKENS or cfg.per_frame:
            raise ValueError(
                f"vision pretraining reads {NUM_TOKENS} description tokens per video: use a per-video resampler "
                f"connector with num_queries={NUM_TOKENS} before the projector, got {cfg.to_dict()}"
            )
        self.connector = build_connector(cfg, dim, dim)
        self.grid = IMAGE_SIZE // PATCH_SIZE
        self.head = nn.Linear(dim, len(WORDS))
        # Dense auxiliary head on the tower's patch features: colour / shape / size of the object centred there.
        self.patch_sizes = (len(COLORS) + 1, len(SHAPES) + 1, len(SIZES) + 1)
        self.patch_head = nn.Linear(dim, sum(self.patch_sizes))

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) → (B, T, grid, grid, dim): the tower's last hidden states, as the video model selects them."""
        b, t = pixels.shape[:2]
        hidden = self.vision_tower(pixels.flatten(0, 1), output_hidden_states=True).hidden_states[-1]
        return hidden.unflatten(0, (b, t)).unflatten(2, (self.grid, self.grid))

    def slot_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) → (B, NUM_TOKENS, dim): the connector's tokens, as the video model computes them."""
        return torch.stack([self.connector(clip) for clip in self.features(pixels)])

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Word logits (B, NUM_TOKENS, len(WORDS))."""
        return self.head(self.slot_tokens(pixels))

    def forward_with_patches(self, pixels: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Word logits and the dense patch logits (colour, shape, size), each (B, T, grid, grid, classes)."""
        feats = self.features(pixels)
        words = self.head(torch.stack([self.connector(clip) for clip in feats]))
        return words, list(self.patch_head(feats).split(self.patch_sizes, dim=-1))


def patch_batch(clips: list[Clip], grid: int) -> torch.Tensor:
    """Dense labels (3, B, T, grid, grid) of some clips."""
    return torch.from_numpy(
        np.stack([patch_labels(c.states, c.frames.shape[1], grid) for c in clips], axis=1)
    )


def patch_loss(logits: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    return sum(
        F.cross_entropy(lg.flatten(0, -2), lab.flatten()) for lg, lab in zip(logits, labels, strict=True)
    )


def clip_batch(clips: list[Clip], rng: np.random.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel values (with codec noise when `rng` is given) and word labels (B, NUM_TOKENS) of some clips."""
    frames = [codec_noise(c.frames, rng) if rng is not None else c.frames for c in clips]
    pixels = torch.stack([preprocess_frames(f, FRAME_TRANSFORM) for f in frames])
    return pixels, torch.from_numpy(np.stack([slot_labels(c.states) for c in clips]))


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
    patch_weight: float = 0.5,
    init: dict[str, torch.Tensor] | None = None,
) -> tuple[VisionPretrainer, list[dict[str, Any]]]:
    """Train tower + connector + heads on fresh clips of the world's train split; returns the model and its curve.

    `init` continues from a saved VisionPretrainer state (heads missing from it start fresh)."""
    torch.manual_seed(seed)
    model = VisionPretrainer()
    if init is not None:
        model.load_state_dict(init, strict=False)
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
        clips = [next(stream) for _ in range(batch_size)]
        pixels, labels = clip_batch(clips, rng)
        words, patches = model.forward_with_patches(pixels)
        loss = slot_loss(words, labels) + patch_weight * patch_loss(patches, patch_batch(clips, model.grid))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % eval_every == 0 or step == steps:
            acc = slot_accuracy(model, held_out)
            point = {
                "step": step,
                "clips": step * batch_size,
                "loss": float(loss),
                "minutes": (time.perf_counter() - start) / 60,
                "accuracy": acc,
            }
            curve.append(point)
            log(
                f"vision step {step}/{steps} loss {float(loss):.3f} {point['minutes']:.1f} min | "
                + " ".join(f"{k} {v:.0f}" for k, v in acc.items())
            )
            if on_eval is not None:
                on_eval(model, curve)
    return model, curve
