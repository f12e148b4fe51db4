"""Training clips of the synthetic world, rendered on the fly, and what the vision pretraining learns.

A clip is rendered at the world's frame count and then subsampled exactly as evaluation samples a
decoded video (`uniform_indices`, lmms-eval's linspace), so training sees the frames the model is
later asked about. `codec_noise` imitates what H.264 (yuv420p) does to the rendered colours, since
evaluation decodes mp4 files while training skips the encoder.

`slot_labels` is the supervision of the vision pretraining: one *slot* per palette colour (the
object whose first colour it is: present, shape, size, direction, speed, appears late, disappears,
colour it turns into) plus one global slot (shape counts at the start and end). The labels are
derived from the sampled frames' states with `videollm.data.questions`, the same functions that
answer the questions, so the slots carry exactly what the questions ask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from videollm.data.questions import FAST, NO_MOTION, STILL, direction, tracks
from videollm.data.synthetic import VideoItem, make_item
from videollm.data.world import PALETTE, SHAPES, SIZES, FrameState
from videollm.video.sampling import uniform_indices

COLORS = tuple(PALETTE)
DIRECTION_CLASSES = ("left", "right", "up", "down", NO_MOTION)
SPEED_CLASSES = ("still", "slow", "fast")
MAX_COUNT = 6
IGNORE = -100
# Slot heads: name → number of classes. The first len(COLORS) slots use SLOT_HEADS, the last GLOBAL_HEADS.
SLOT_HEADS = {
    "present": 2,
    "shape": len(SHAPES),
    "size": len(SIZES),
    "direction": len(DIRECTION_CLASSES),
    "speed": len(SPEED_CLASSES),
    "appears": 2,
    "disappears": 2,
    "turns": len(COLORS) + 1,  # 0 = keeps its colour
}
GLOBAL_HEADS = {"count_start": MAX_COUNT + 1, "count_end": MAX_COUNT + 1}
NUM_SLOTS = len(COLORS) + 1


@dataclass(frozen=True)
class Clip:
    """One training clip: the item (annotations of the full clip) and its sampled frames."""

    item: VideoItem
    indices: np.ndarray
    frames: np.ndarray  # uint8 T×H×W×3, the sampled frames

    @property
    def states(self) -> list[FrameState]:
        return [self.item.states[i] for i in self.indices]


def make_clip(seed: int, split: str, index: int, frames: int = 16, size: int = 64, num_frames: int = 8) -> Clip:
    """Clip `index` of a world split (the same clip `videollm data synth` writes), subsampled."""
    item, pixels = make_item(seed, split, index, frames, size, fps=8.0)
    indices = uniform_indices(0, frames - 1, num_frames)
    return Clip(item, indices, pixels[indices])


def codec_noise(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """yuv420p round trip (chroma averaged over 2×2 blocks) plus slight noise, as an H.264 decode shows."""
    x = frames.astype(np.float32)
    m = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)
    ycc = x @ m.T
    t, h, w, _ = ycc.shape
    chroma = ycc[..., 1:].reshape(t, h // 2, 2, w // 2, 2, 2).mean(axis=(2, 4))
    ycc[..., 1:] = chroma.repeat(2, axis=1).repeat(2, axis=2)
    rgb = ycc @ np.linalg.inv(m).T
    rgb += rng.normal(0.0, 2.0, size=rgb.shape).astype(np.float32)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _speed_class(speed: float) -> int:
    return 0 if speed < STILL else 1 if speed < FAST else 2


def slot_labels(states: list[FrameState]) -> dict[str, np.ndarray]:
    """Per-head labels (NUM_SLOTS,) for one clip's frames; IGNORE where a head does not apply."""
    labels = {name: np.full(NUM_SLOTS, IGNORE, np.int64) for name in (*SLOT_HEADS, *GLOBAL_HEADS)}
    labels["present"][: len(COLORS)] = 0
    last = len(states) - 1
    for t in tracks(states).values():
        s = COLORS.index(t.colors[0])
        labels["present"][s] = 1
        labels["shape"][s] = SHAPES.index(t.shape)
        labels["size"][s] = list(SIZES).index(t.size)
        d = direction(t)
        if d is not None:
            labels["direction"][s] = DIRECTION_CLASSES.index(d)
        labels["speed"][s] = _speed_class(t.speed)
        labels["appears"][s] = int(t.frames[0] > 0)
        labels["disappears"][s] = int(t.frames[-1] < last)
        changes = t.color_changes
        labels["turns"][s] = 0 if not changes else COLORS.index(changes[-1][1]) + 1
    g = NUM_SLOTS - 1
    labels["count_start"][g] = min(len(states[0]), MAX_COUNT)
    labels["count_end"][g] = min(len(states[-1]), MAX_COUNT)
    return labels
