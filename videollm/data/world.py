"""The synthetic video world: coloured shapes that move, appear, disappear and change colour.

A `Scene` lives in normalised units — canvas [0, 1]², clip time u ∈ [0, 1] — so one scene renders at
any frame count and size. `scene_states` samples it into per-frame `ObjectState`s and `render_states`
draws those with numpy. Questions, answers and captions are derived from the frame states only (never
from the scene's parameters), so an answer can be re-derived from reversed or shuffled frames.

Scenes are built so that answers are unambiguous: every object has its own colour for the whole clip
(a colour change picks a colour no other object ever has), objects never overlap and move in straight
lines without bouncing, speeds differ by a factor above two, events are far apart in time, and the
top-left corner stays empty for the frame counter of `videollm.video.counter`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 190, 70),
    "blue": (50, 100, 240),
    "yellow": (240, 220, 40),
    "purple": (160, 70, 220),
    "cyan": (40, 210, 220),
}
BACKGROUND = (28, 28, 28)
SHAPES = ("circle", "square", "triangle")
# Radius (canvas sides) of the circle; squares and triangles are scaled to look about as big.
SIZES: dict[str, float] = {"small": 0.08, "large": 0.12}
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
# Distance travelled over the whole clip (canvas sides): a ratio of 2.3, so "faster" is never close.
SPEEDS: dict[str, float] = {"slow": 0.22, "fast": 0.5}

_SQUARE_HALF = 0.886  # half side of a square of the circle's area, in radii
_TRIANGLE_R = 1.3  # circumradius of the triangle, in radii
BOUND = 1.3  # every shape fits in a disc of BOUND radii
# The counter of videollm.video.counter covers a quarter of the short side from the top-left corner.
COUNTER_BOX = 0.25 + 0.03
_GAP = 0.03  # empty space kept between shapes and around the canvas edge
_CHECK_U = np.linspace(0.0, 1.0, 129)  # times at which placement is checked (finer than any clip)

# Windows (clip time) of the events: far enough from the ends and from each other to be seen with a
# handful of uniformly sampled frames.
APPEAR = (0.3, 0.55)
DISAPPEAR = (0.45, 0.7)
CHANGE = (0.35, 0.65)
NEVER = 2.0


@dataclass(frozen=True)
class SceneObject:
    """One shape and its whole life in the clip, in normalised units."""

    id: int
    shape: str
    color: str
    size: str
    start: tuple[float, float]  # centre (x, y) at u = 0, canvas sides (y grows downwards)
    velocity: tuple[float, float]  # canvas sides per clip
    appear: float = 0.0  # visible while appear <= u < disappear
    disappear: float = NEVER
    new_color: str | None = None  # colour from u >= change on
    change: float = NEVER

    def center(self, u: float | np.ndarray) -> tuple:
        return self.start[0] + self.velocity[0] * u, self.start[1] + self.velocity[1] * u

    def visible(self, u: float | np.ndarray):
        return (self.appear <= u) & (u < self.disappear)

    def color_at(self, u: float) -> str:
        return self.new_color if self.new_color is not None and u >= self.change else self.color


@dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...]

    def to_dict(self) -> dict:
        return {"objects": [asdict(o) for o in self.objects]}

    @classmethod
    def from_dict(cls, d: dict) -> Scene:
        return cls(
            tuple(
                SceneObject(**{**o, "start": tuple(o["start"]), "velocity": tuple(o["velocity"])})
                for o in d["objects"]
            )
        )


@dataclass(frozen=True)
class ObjectState:
    """What one frame shows of one object."""

    id: int
    shape: str
    color: str
    size: str
    x: float
    y: float


FrameState = tuple[ObjectState, ...]


def frame_times(frames: int) -> np.ndarray:
    """Clip time u of each of `frames` frames: the first frame is u=0, the last u=1."""
    if frames < 2:
        raise ValueError(f"a clip needs at least 2 frames, got {frames}")
    return np.arange(frames) / (frames - 1)


def scene_states(scene: Scene, frames: int) -> list[FrameState]:
    """Sample the scene at `frames` evenly spaced times: the visible objects of each frame."""
    states = []
    for u in frame_times(frames):
        visible = []
        for o in scene.objects:
            if o.visible(u):
                x, y = o.center(u)
                visible.append(ObjectState(o.id, o.shape, o.color_at(u), o.size, float(x), float(y)))
        states.append(tuple(visible))
    return states


def shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Which offsets (dx, dy) from a shape's centre it covers at radius r; shared by the renderer and the
    starter's per-patch labels, so labels and pixels agree exactly."""
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) <= _SQUARE_HALF * r
    if shape == "triangle":  # equilateral, pointing up, centred on its centroid
        big = _TRIANGLE_R * r
        return (dy <= big / 2) & (np.sqrt(3) * np.abs(dx) <= dy + big)
    raise ValueError(f"unknown shape {shape!r}: expected one of {SHAPES}")


def render_states(states: Sequence[FrameState], size: int, counter: bool = False) -> np.ndarray:
    """Draw frame states as uint8 T×size×size×3 RGB; `counter` stamps each frame's index in the corner."""
    frames = np.empty((len(states), size, size, 3), dtype=np.uint8)
    frames[:] = BACKGROUND
    centres = (np.arange(size) + 0.5) / size  # pixel centres in canvas units
    for t, state in enumerate(states):
        for o in state:
            r = SIZES[o.size]
            # Only the shape's bounding box is tested, so drawing costs the same at any canvas size.
            x0, y0 = (max(0, int(np.floor((c - BOUND * r) * size))) for c in (o.x, o.y))
            x1, y1 = (min(size, int(np.ceil((c + BOUND * r) * size)) + 1) for c in (o.x, o.y))
            dx = centres[None, x0:x1] - o.x
            dy = centres[y0:y1, None] - o.y
            mask = shape_mask(o.shape, dx, dy, r)
            frames[t, y0:y1, x0:x1][mask] = PALETTE[o.color]
    if counter:
        from videollm.video.counter import draw_counter

        for t in range(len(frames)):
            frames[t] = draw_counter(frames[t], t)
    return frames


def render_scene(scene: Scene, frames: int, size: int, counter: bool = False) -> np.ndarray:
    """Render a scene straight to pixels (uint8 T×size×size×3), e.g. for on-the-fly training data."""
    return render_states(scene_states(scene, frames), size, counter=counter)


@dataclass(frozen=True)
class _Path:
    """An object's centre and visibility at the placement check times."""

    x: np.ndarray
    y: np.ndarray
    visible: np.ndarray
    reach: float  # radius of its bounding disc

    @classmethod
    def of(cls, o: SceneObject) -> _Path:
        x, y = o.center(_CHECK_U)
        return cls(x, y, o.visible(_CHECK_U), BOUND * SIZES[o.size])


def _start_range(v: float, reach: float) -> tuple[float, float]:
    """Where a path moving by `v` over the clip may start so that it starts and ends on the canvas."""
    return (reach, 1 - reach - v) if v >= 0 else (reach - v, 1 - reach)


def _place(rng: np.random.Generator, o: SceneObject, placed: Sequence[_Path], tries: int = 48):
    """`o` moved to a random start where its path stays on the canvas, clear of the counter corner
    and of every placed object whenever both are visible; None when no tried start fits."""
    r = BOUND * SIZES[o.size]
    xs, ys = _start_range(o.velocity[0], r + _GAP), _start_range(o.velocity[1], r + _GAP)
    if xs[0] > xs[1] or ys[0] > ys[1]:
        return None
    sx = np.round(rng.uniform(*xs, size=tries), 4)
    sy = np.round(rng.uniform(*ys, size=tries), 4)
    vis = o.visible(_CHECK_U)
    x = sx[:, None] + o.velocity[0] * _CHECK_U[None, vis]  # tries × visible times
    y = sy[:, None] + o.velocity[1] * _CHECK_U[None, vis]
    ok = ~np.any((x - r < COUNTER_BOX) & (y - r < COUNTER_BOX), axis=1)
    for p in placed:
        both = p.visible[vis]
        if both.any():
            dist = np.hypot(x[:, both] - p.x[vis][both], y[:, both] - p.y[vis][both])
            ok &= dist.min(axis=1) >= r + p.reach + _GAP
    if not ok.any():
        return None
    k = int(np.argmax(ok))
    return replace(o, start=(float(sx[k]), float(sy[k])))


def make_scene(
    rng: np.random.Generator,
    max_objects: int = 4,
    p_moving: float = 0.7,
    p_appear: float = 0.35,
    p_disappear: float = 0.3,
    p_change: float = 0.4,
) -> Scene:
    """A random scene: 1..max_objects shapes, each with its own colour, some moving, with events.

    Each object has at most one event (appear late, disappear early, change colour), and at least one
    object is visible the whole clip, so no frame is ever empty. Pure: the scene depends only on `rng`.
    """
    if not 1 <= max_objects <= len(PALETTE) - 1:
        raise ValueError(f"max_objects must be in [1, {len(PALETTE) - 1}], got {max_objects}")
    weights = np.array([0.1, 0.3, 0.35, 0.25, 0.1][:max_objects])
    n = int(rng.choice(np.arange(1, max_objects + 1), p=weights / weights.sum()))
    colors = [str(c) for c in rng.permutation(list(PALETTE))]
    spare = colors[n:]  # colours no object starts with: the only ones a colour change may pick
    events: list[str | None] = [None] * n
    slots = iter(rng.permutation(n).tolist())
    if n >= 2:
        # Appear/disappear never touch every object: one always stays, so no frame is empty.
        if rng.random() < p_appear:
            events[next(slots)] = "appear"
        if rng.random() < p_disappear and sum(e is not None for e in events) < n - 1:
            events[next(slots)] = "disappear"
    free = [i for i in range(n) if events[i] is None]
    if free and rng.random() < p_change:
        events[free[int(rng.integers(len(free)))]] = "change"

    placed: list[SceneObject] = []
    for i in range(n):
        shape = str(rng.choice(SHAPES))
        size = str(rng.choice(list(SIZES)))
        velocity = (0.0, 0.0)
        if rng.random() < p_moving:
            dx, dy = DIRECTIONS[str(rng.choice(list(DIRECTIONS)))]
            speed = SPEEDS[str(rng.choice(list(SPEEDS)))]
            velocity = (dx * speed, dy * speed)
        kwargs: dict = {}
        if events[i] == "appear":
            kwargs["appear"] = round(float(rng.uniform(*APPEAR)), 4)
        elif events[i] == "disappear":
            kwargs["disappear"] = round(float(rng.uniform(*DISAPPEAR)), 4)
        elif events[i] == "change":
            kwargs["new_color"] = spare[0]
            kwargs["change"] = round(float(rng.uniform(*CHANGE)), 4)
        o = SceneObject(len(placed), shape, colors[i], size, (0.5, 0.5), velocity, **kwargs)
        paths = [_Path.of(p) for p in placed]
        # A moving shape that finds no free lane stays still instead of leaving the scene.
        fitted = _place(rng, o, paths) or _place(rng, replace(o, velocity=(0.0, 0.0)), paths)
        if fitted is not None:
            placed.append(fitted)
    if not any(o.appear == 0.0 and o.disappear == NEVER for o in placed):
        # Every always-visible object failed to fit: fall back to one still shape in the centre-right.
        placed = [SceneObject(0, "circle", colors[0], "large", (0.6, 0.6), (0.0, 0.0))]
    return Scene(tuple(placed))
