"""Training clips of the synthetic world, rendered on the fly, and what the vision pretraining learns.

A clip is rendered at the world's frame count and then subsampled exactly as evaluation samples a
decoded video (`uniform_indices`, lmms-eval's linspace), so training sees the frames the model is
later asked about. `codec_noise` imitates what H.264 (yuv420p) does to the rendered colours, since
evaluation decodes mp4 files while training skips the encoder.

`slot_words` is the supervision of the vision pretraining: per palette colour a slot of six tokens
(colour, size, shape, direction, speed, event of the object whose first colour it is) plus two
counts, each token labelled with a word. The labels are derived from the sampled frames' states with
`videollm.data.questions`, the same functions that answer the questions, so the tokens carry exactly
what the questions ask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from videollm.data.questions import (
    COUNT_CHANGES,
    FAST,
    NO_MOTION,
    STILL,
    Track,
    count_change,
    direction,
    tracks,
)
from videollm.data.synthetic import VideoItem, make_item
from videollm.data.world import PALETTE, SHAPES, SIZES, FrameState, shape_mask
from videollm.video.sampling import uniform_indices

COLORS = tuple(PALETTE)
IGNORE = -100
MAX_COUNT = 6
# The vision pretraining teaches the connector to *write* a structured description: one token per
# (colour slot, field), each predicting a word, plus the shape counts at the start and the end and how the
# count changed (the LM reads "more" rather than comparing two numbers).
SLOT_FIELDS = ("color", "size", "shape", "motion", "speed", "event")
NONE = "none"
WORDS: tuple[str, ...] = (
    NONE,
    *COLORS,
    *SIZES,
    *SHAPES,
    "left",
    "right",
    "up",
    "down",
    "still",
    "slow",
    "fast",
    "appears",
    "disappears",
    *(str(k) for k in range(MAX_COUNT + 1)),
    *COUNT_CHANGES,
)
NUM_SLOT_TOKENS = len(COLORS) * len(SLOT_FIELDS)
GLOBAL_FIELDS = ("count_start", "count_end", "count_change")  # after the slots
NUM_TOKENS = NUM_SLOT_TOKENS + len(GLOBAL_FIELDS)
PATCH_FIELDS = ("motion", "speed", "event")  # the per-patch targets of the clip stage (`patch_words`)
FIELDS: tuple[str, ...] = (*(f for _ in COLORS for f in SLOT_FIELDS), *GLOBAL_FIELDS)


@dataclass(frozen=True)
class Clip:
    """One training clip: the item (annotations of the full clip) and its sampled frames."""

    item: VideoItem
    indices: np.ndarray
    frames: np.ndarray  # uint8 T×H×W×3, the sampled frames

    @property
    def states(self) -> list[FrameState]:
        return [self.item.states[i] for i in self.indices]


def make_clip(
    seed: int, split: str, index: int, frames: int = 16, size: int = 64, num_frames: int = 8
) -> Clip:
    """Clip `index` of a world split (the same clip `videollm data synth` writes), subsampled."""
    item, pixels = make_item(seed, split, index, frames, size, fps=8.0)
    indices = uniform_indices(0, frames - 1, num_frames)
    return Clip(item, indices, pixels[indices])


def codec_noise(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """yuv420p round trip (chroma averaged over 2×2 blocks) plus slight noise, as an H.264 decode shows."""
    x = frames.astype(np.float32)
    m = np.array(
        [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32
    )
    ycc = x @ m.T
    t, h, w, _ = ycc.shape
    chroma = ycc[..., 1:].reshape(t, h // 2, 2, w // 2, 2, 2).mean(axis=(2, 4))
    ycc[..., 1:] = chroma.repeat(2, axis=1).repeat(2, axis=2)
    rgb = ycc @ np.linalg.inv(m).T
    rgb += rng.normal(0.0, 2.0, size=rgb.shape).astype(np.float32)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def slot_words(states: list[FrameState]) -> list[str | None]:
    """The description the connector learns to write for these frames: one word per token (None: no label).

    Slot c (palette order) describes the object whose first colour is c: its colour, size, shape,
    direction of motion, speed, and event (appears late, disappears, or the colour it turns into);
    an absent colour's slot says "none" throughout. The last three tokens are the counts at the start
    and the end, and the change between them (more / fewer / same).
    """
    words: list[str | None] = [NONE] * NUM_TOKENS
    for t in tracks(states).values():
        k = COLORS.index(t.colors[0]) * len(SLOT_FIELDS)
        words[k : k + len(SLOT_FIELDS)] = track_words(t, len(states) - 1)
    first, last = len(states[0]), len(states[-1])
    words[-3:] = [str(min(first, MAX_COUNT)), str(min(last, MAX_COUNT)), count_change(first, last)]
    return words


def track_words(t: Track, last: int) -> list[str | None]:
    """One object's words, in `SLOT_FIELDS` order (motion None when too small or diagonal to call)."""
    d = direction(t)
    changes = t.color_changes
    event = (
        changes[-1][1]
        if changes
        else "appears"
        if t.frames[0] > 0
        else "disappears"
        if t.frames[-1] < last
        else NONE
    )
    speed = "still" if t.speed < STILL else "slow" if t.speed < FAST else "fast"
    motion = None if d is None else "still" if d == NO_MOTION else d
    return [t.colors[0], t.size, t.shape, motion, speed, event]


def patch_words(states: list[FrameState], owners: list[np.ndarray]) -> np.ndarray:
    """(len(PATCH_FIELDS), T, grid, grid) word indices: on every patch of every frame, the motion, speed and
    event of the object covering it (IGNORE on background). The clip stage's dense target after the temporal
    adapters: it makes motion a property of each patch, which the connector then pools like colour."""
    words = {oid: track_words(t, len(states) - 1) for oid, t in tracks(states).items()}
    columns = [SLOT_FIELDS.index(f) for f in PATCH_FIELDS]
    out = np.full((len(PATCH_FIELDS), len(owners), *owners[0].shape), IGNORE, np.int64)
    for t, owner in enumerate(owners):
        for oid, w in words.items():
            mine = owner == oid
            for j, c in enumerate(columns):
                if w[c] is not None:
                    out[j, t, mine] = WORDS.index(w[c])
    return out


def slot_geometry(states: list[FrameState]) -> np.ndarray:
    """(len(COLORS), 7): per colour slot, where and when its object is first and last seen — x, y at its first
    and last visible frame (canvas sides), those frames' times (0..1) — and 1 when the slot has an object (else
    all 0). An auxiliary target of the slot's tokens: it makes the connector find the object at both ends of
    its life, from which direction, speed and events follow."""
    out = np.zeros((len(COLORS), 7), np.float32)
    last = max(1, len(states) - 1)
    for t in tracks(states).values():
        out[COLORS.index(t.colors[0])] = (
            t.xs[0],
            t.ys[0],
            t.xs[-1],
            t.ys[-1],
            t.frames[0] / last,
            t.frames[-1] / last,
            1.0,
        )
    return out


def slot_labels(states: list[FrameState]) -> np.ndarray:
    """`slot_words` as word indices (NUM_TOKENS,), IGNORE where a token has no label."""
    return np.array([IGNORE if w is None else WORDS.index(w) for w in slot_words(states)], np.int64)


@dataclass(frozen=True)
class FrameTargets:
    """What the tower's image stage learns from one frame.

    `patches` (5, grid, grid): colour, shape and size index (+1; 0 = background) of the object covering
    most of each patch, and the offset (x, y) of that object's centre from the patch centre, in patches.
    `weights` (K, grid, grid): each object's share of its pixels per patch (rows sum to 1), so the tower's
    features can be pooled per object as the connector's attention later pools them; `objects` (K, 3):
    each object's colour, shape and size index.
    """

    patches: np.ndarray
    weights: np.ndarray
    objects: np.ndarray
    owners: np.ndarray  # (grid, grid): id of the object covering most of each patch, -1 on background


def frame_targets(state: FrameState, size: int, grid: int) -> FrameTargets:
    """Dense and per-object labels of one rendered frame (see `FrameTargets`)."""
    patch = size // grid
    centres = (np.arange(size) + 0.5) / size
    cover = np.zeros((len(state), grid, grid), np.float32)
    for k, o in enumerate(state):
        mask = shape_mask(o.shape, centres[None, :] - o.x, centres[:, None] - o.y, SIZES[o.size])
        cover[k] = mask.reshape(grid, patch, grid, patch).sum(axis=(1, 3))
    patches = np.zeros((5, grid, grid), np.float32)
    objects = np.zeros((len(state), 3), np.int64)
    owners = np.full((grid, grid), -1, np.int64)
    if state:
        owner = np.where(cover.max(axis=0) > 0, cover.argmax(axis=0), -1)
        for k, o in enumerate(state):
            objects[k] = COLORS.index(o.color), SHAPES.index(o.shape), list(SIZES).index(o.size)
            mine = owner == k
            owners[mine] = o.id
            gy, gx = np.nonzero(mine)
            patches[:3, mine] = (objects[k] + 1)[:, None]
            patches[3, mine] = o.x * grid - (gx + 0.5)
            patches[4, mine] = o.y * grid - (gy + 0.5)
    weights = cover / np.maximum(cover.sum(axis=(1, 2), keepdims=True), 1e-6)
    return FrameTargets(patches, weights, objects, owners)
