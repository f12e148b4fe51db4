"""Questions about the synthetic world, with answers computed from the rendered frame states.

`answer(qtype, objects, states)` is the single source of truth: it derives the short answer of a
question from whatever frames it is given, so the same function re-derives answers for reversed,
shuffled or frozen clips. That is how tests prove a temporal question needs time (its answer changes
when the frames are reversed or frozen) and a static one does not (any single frame gives its answer).

Objects are named by their colour in the first frame they appear in plus their shape ("red circle"):
colours are unique per object, so the name is unambiguous; for a reversed clip the object that
changes colour is named by its other colour, as a viewer of the reversed clip would name it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from videollm.data.world import PALETTE, SHAPES, SIZES, FrameState, ObjectState

STATIC_QTYPES = ("color", "shape", "size", "count")
TEMPORAL_QTYPES = (
    "direction",
    "speed",
    "order",
    "disappear",
    "color_change",
    "changed_object",
    "count_change",
)
IMAGE_QTYPES = ("color", "shape", "size", "count", "position")
QTYPES = STATIC_QTYPES + TEMPORAL_QTYPES + ("position",)

# Which perturbation of the frames changes a temporal question's answer. "freeze" shows one frame
# for the whole clip; "reverse" plays it backwards. Speed is the same backwards but needs motion.
SENSITIVE_TO: dict[str, tuple[str, ...]] = {
    "direction": ("reverse", "freeze"),
    "speed": ("freeze",),
    "order": ("reverse",),
    "disappear": ("reverse", "freeze"),
    "color_change": ("reverse", "freeze"),
    "changed_object": ("reverse", "freeze"),
    "count_change": ("reverse", "freeze"),
}

# Thresholds in canvas sides (displacement) and canvas sides per clip (speed).
STILL = 0.05  # a net displacement below this is "not moving"
MOVING = 0.1  # ... above this has a direction; in between is ambiguous and never asked
FAST = 0.36  # between the slow (0.22) and fast (0.5) speeds of the world
FASTER = 1.8  # speed ratio for "faster"; below 1.25 is "same speed", in between ambiguous
CENTRE_OFF = 0.15  # distance from the centre line for "left"/"right", "top"/"bottom"

NO_MOTION, SAME_SPEED, SAME_TIME, NONE, NO_CHANGE = (
    "not moving",
    "same speed",
    "same time",
    "none",
    "no change",
)
COUNT_CHANGES = ("more", "fewer", "same")


def question_type(qtype: str) -> str:
    """'static' or 'temporal'."""
    if qtype in TEMPORAL_QTYPES:
        return "temporal"
    if qtype in STATIC_QTYPES or qtype == "position":
        return "static"
    raise ValueError(f"unknown qtype {qtype!r}: expected one of {QTYPES}")


@dataclass(frozen=True)
class Track:
    """One object's history over the given frames (indices into those frames)."""

    id: int
    shape: str
    size: str
    frames: tuple[int, ...]
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    colors: tuple[str, ...]
    num_frames: int  # length of the clip the track was taken from

    @property
    def name(self) -> str:
        return f"{self.colors[0]} {self.shape}"

    @property
    def displacement(self) -> tuple[float, float]:
        return self.xs[-1] - self.xs[0], self.ys[-1] - self.ys[0]

    @property
    def speed(self) -> float:
        """Net distance per clip length while visible (canvas sides per clip)."""
        span = (self.frames[-1] - self.frames[0]) / max(1, self.num_frames - 1)
        return float(np.hypot(*self.displacement)) / span if span > 0 else 0.0

    @property
    def color_changes(self) -> list[tuple[str, str]]:
        return [(a, b) for a, b in zip(self.colors, self.colors[1:], strict=False) if a != b]


def tracks(states: Sequence[FrameState]) -> dict[int, Track]:
    """Per-object histories, keyed by object id, in id order."""
    seen: dict[int, list[tuple[int, ObjectState]]] = {}
    for t, state in enumerate(states):
        for o in state:
            seen.setdefault(o.id, []).append((t, o))
    out = {}
    for oid in sorted(seen):
        items = seen[oid]
        first = items[0][1]
        out[oid] = Track(
            oid,
            first.shape,
            first.size,
            tuple(t for t, _ in items),
            tuple(o.x for _, o in items),
            tuple(o.y for _, o in items),
            tuple(o.color for _, o in items),
            len(states),
        )
    return out


def count_change(first: int, last: int) -> str:
    """The answer of a count_change question: how the number of shapes went from `first` to `last`."""
    return "more" if last > first else "fewer" if last < first else "same"


def direction(track: Track, min_distance: float = MOVING) -> str | None:
    """'left'/'right'/'up'/'down', NO_MOTION, or None when the motion is too small (below
    `min_distance`) or too diagonal to call."""
    dx, dy = track.displacement
    dist = float(np.hypot(dx, dy))
    if dist < STILL:
        return NO_MOTION
    if dist < min_distance or min(abs(dx), abs(dy)) > 0.5 * max(abs(dx), abs(dy)):
        return None
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def answer(qtype: str, objects: Sequence[int], states: Sequence[FrameState]) -> str | None:
    """The short answer of a question about `objects` (ids), derived from `states` alone.

    None means the frames do not determine an answer (the question would be ambiguous on them).
    """
    return _answer(qtype, objects, states, tracks(states))


def _answer(
    qtype: str, objects: Sequence[int], states: Sequence[FrameState], tr: dict[int, Track]
) -> str | None:
    if any(o not in tr for o in objects):
        return None
    objs = [tr[o] for o in objects]
    if qtype in ("color", "shape", "size"):
        (a,) = objs
        if qtype == "shape":
            return a.shape
        if qtype == "size":
            return a.size
        return a.colors[0] if len(set(a.colors)) == 1 else None
    if qtype == "count":
        counts = {len(s) for s in states}
        return str(counts.pop()) if len(counts) == 1 else None
    if qtype == "position":
        (a,) = objs
        if len(set(zip(a.xs, a.ys, strict=True))) != 1:
            return None
        x, y = a.xs[0] - 0.5, a.ys[0] - 0.5
        if abs(x) >= CENTRE_OFF:
            return "right" if x > 0 else "left"
        if abs(y) >= CENTRE_OFF:
            return "bottom" if y > 0 else "top"
        return None
    if qtype == "direction":
        return direction(objs[0])
    if qtype == "speed":
        a, b = objs
        fast, slow = sorted((a, b), key=lambda t: t.speed, reverse=True)
        if fast.speed < STILL:
            return SAME_SPEED
        if fast.speed >= FASTER * slow.speed:
            return fast.name
        return SAME_SPEED if fast.speed <= 1.25 * slow.speed else None
    if qtype == "order":
        a, b = objs
        gap = max(1, round(0.15 * (len(states) - 1)))
        if a.frames[0] == b.frames[0]:
            return SAME_TIME
        if abs(a.frames[0] - b.frames[0]) < gap:
            return None
        return a.name if a.frames[0] < b.frames[0] else b.name
    if qtype == "disappear":
        gone = [t for t in tr.values() if t.frames[-1] < len(states) - 1]
        return NONE if not gone else gone[0].name if len(gone) == 1 else None
    if qtype == "color_change":
        changes = objs[0].color_changes
        return NO_CHANGE if not changes else changes[0][1] if len(changes) == 1 else None
    if qtype == "changed_object":
        changed = [t for t in tr.values() if t.color_changes]
        if not changed:
            return NONE
        return changed[0].name if len(changed) == 1 and len(changed[0].color_changes) == 1 else None
    if qtype == "count_change":
        return count_change(len(states[0]), len(states[-1]))
    raise ValueError(f"unknown qtype {qtype!r}: expected one of {QTYPES}")


@dataclass(frozen=True)
class QA:
    """One question in all its forms: open-ended (short answer and sentence) and multiple choice."""

    qtype: str
    objects: tuple[int, ...]  # ids of the objects it is about (for re-deriving the answer)
    question: str
    answer: str  # short answer: a word or a short phrase
    sentence: str  # the answer as one fluent sentence
    candidates: tuple[str, ...]  # multiple-choice options, `answer` among them

    @property
    def type(self) -> str:
        return question_type(self.qtype)

    @property
    def answer_index(self) -> int:
        return self.candidates.index(self.answer)


_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_DIR_TO = {"left": "to the left", "right": "to the right", "up": "up", "down": "down"}

# Two wordings per question, picked at random per question so the training text varies.
_QUESTIONS: dict[str, tuple[str, ...]] = {
    "color": ("What color is the {a}?", "What is the color of the {a}?"),
    "shape": ("What shape is the {c} object?", "Which shape is {c}?"),
    "size": ("Is the {a} small or large?", "How big is the {a}, small or large?"),
    "count": ("How many shapes are in the {m}?", "How many objects are there in the {m}?"),
    "position": ("Is the {a} {p}?", "Where is the {a}, {p}?"),
    "direction": ("Which direction does the {a} move?", "In which direction is the {a} moving?"),
    "speed": ("Which moves faster, the {a} or the {b}?", "Which shape is faster: the {a} or the {b}?"),
    "order": ("Which appears first, the {a} or the {b}?", "Which shape shows up first: the {a} or the {b}?"),
    "disappear": ("Which shape disappears during the video?", "Which object vanishes from the video?"),
    "color_change": ("What color does the {a} turn into?", "What color does the {a} change to?"),
    "changed_object": ("Which shape changes color?", "Which object changes its color during the video?"),
    "count_change": (
        "Are there more or fewer shapes at the end of the video than at the start?",
        "At the end of the video, are there more or fewer shapes than at the beginning?",
    ),
}


def _sentence(qtype: str, ans: str, names: Sequence[str], shape_name: str = "", medium: str = "video") -> str:
    """The answer as a short fluent sentence."""
    a = names[0] if names else ""
    if qtype == "color":
        return f"The {shape_name} is {ans}."
    if qtype == "shape":
        return f"The {a.split()[0]} object is a {ans}."
    if qtype == "size":
        return f"The {a} is {ans}."
    if qtype == "count":
        n = int(ans)
        word = _NUMBERS[n] if n < len(_NUMBERS) else ans
        return (
            f"There is {word} shape in the {medium}."
            if n == 1
            else f"There are {word} shapes in the {medium}."
        )
    if qtype == "position":
        return f"The {a} is on the {ans}." if ans in ("left", "right") else f"The {a} is at the {ans}."
    if qtype == "direction":
        return f"The {a} does not move." if ans == NO_MOTION else f"The {a} moves {_DIR_TO[ans]}."
    if qtype == "speed":
        if ans == SAME_SPEED:
            return "They move at the same speed."
        other = names[1] if ans == names[0] else names[0]
        return f"The {ans} moves faster than the {other}."
    if qtype == "order":
        return "They appear at the same time." if ans == SAME_TIME else f"The {ans} appears first."
    if qtype == "disappear":
        return "No shape disappears." if ans == NONE else f"The {ans} disappears."
    if qtype == "color_change":
        return f"The {a} does not change color." if ans == NO_CHANGE else f"The {a} turns {ans}."
    if qtype == "changed_object":
        return "No shape changes color." if ans == NONE else f"The {ans} changes color."
    if qtype == "count_change":
        if ans == "same":
            return "The number of shapes stays the same."
        return f"There are {ans} shapes at the end than at the start."
    raise ValueError(f"unknown qtype {qtype!r}")


def _candidates(
    rng: np.random.Generator, qtype: str, ans: str, names: Sequence[str], all_names: Sequence[str]
):
    """Multiple-choice options (at most five, as A-E), the answer among them, in random order."""
    others: list[str]
    if qtype in ("color", "color_change"):
        pool = [c for c in PALETTE if c != ans]
        # The object's old colour is the most tempting wrong answer for a colour change.
        first = [names[0].split()[0]] if qtype == "color_change" and names[0].split()[0] != ans else []
        rest = [c for c in pool if c not in first]
        others = first + [str(c) for c in rng.choice(rest, size=3 - len(first), replace=False)]
    elif qtype == "shape":
        others = [s for s in SHAPES if s != ans]
    elif qtype == "size":
        others = [s for s in SIZES if s != ans]
    elif qtype == "count":
        pool = [str(k) for k in range(1, 7) if str(k) != ans]
        others = [str(c) for c in rng.choice(pool, size=3, replace=False)]
    elif qtype == "position":
        others = [{"left": "right", "right": "left", "top": "bottom", "bottom": "top"}[ans]]
    elif qtype == "direction":
        others = [d for d in _DIR_TO if d != ans]
    elif qtype == "speed":
        others = [n for n in (*names, SAME_SPEED) if n != ans]
    elif qtype == "order":
        others = [n for n in (*names, SAME_TIME) if n != ans]
    elif qtype in ("disappear", "changed_object"):
        others = [*[n for n in all_names if n != ans][:3], NONE]
    elif qtype == "count_change":
        others = [c for c in COUNT_CHANGES if c != ans]
    else:
        raise ValueError(f"unknown qtype {qtype!r}")
    options = [ans, *others][:5]
    return tuple(options[i] for i in rng.permutation(len(options)))


def _make(
    rng: np.random.Generator,
    qtype: str,
    objects: Sequence[int],
    states: Sequence[FrameState],
    tr: dict[int, Track],
    medium: str = "video",
) -> QA | None:
    """Bind a question to its text, answer and options; None if its answer is not well defined."""
    ans = _answer(qtype, objects, states, tr)
    if ans is None:
        return None
    names = [tr[o].name for o in objects]
    if qtype in ("speed", "order") and rng.random() < 0.5:
        names = names[::-1]
    shape_name = ""
    if qtype == "color":
        t = tr[objects[0]]
        same_shape = [u for u in tr.values() if u.shape == t.shape]
        shape_name = t.shape if len(same_shape) == 1 else f"{t.size} {t.shape}"
    p = ""
    if qtype == "position":
        sides = (
            ("on the left", "on the right") if ans in ("left", "right") else ("at the top", "at the bottom")
        )
        p = " or ".join(sides if rng.random() < 0.5 else sides[::-1])
    template = _QUESTIONS[qtype][int(rng.integers(len(_QUESTIONS[qtype])))]
    question = template.format(
        a=shape_name or (names[0] if names else ""),
        b=names[1] if len(names) > 1 else "",
        c=names[0].split()[0] if names else "",
        m=medium,
        p=p,
    )
    all_names = [t.name for t in tr.values()]
    return QA(
        qtype,
        tuple(objects),
        question,
        ans,
        _sentence(qtype, ans, names, shape_name, medium),
        _candidates(rng, qtype, ans, names, all_names),
    )


def _constant_color(t: Track) -> bool:
    return len(set(t.colors)) == 1


def _nameable_by_shape(t: Track, tr: dict[int, Track]) -> bool:
    """'the circle' / 'the small circle' picks out exactly this object."""
    same = [u for u in tr.values() if u.shape == t.shape]
    return len(same) == 1 or sum(u.size == t.size for u in same) == 1


def video_questions(states: Sequence[FrameState], rng: np.random.Generator) -> list[QA]:
    """At most one question per question type that this clip answers unambiguously.

    Static questions are asked only where every frame gives the same answer (constant colour,
    constant count); temporal ones only where the answer is well defined and not a 'nothing
    happened' answer, so each needs the clip's time to be answered.
    """
    tr = tracks(states)
    steady = [t for t in tr.values() if _constant_color(t)]
    moving = [t for t in steady if direction(t) not in (None, NO_MOTION)]
    options: dict[str, list[tuple[int, ...]]] = {
        "color": [(t.id,) for t in steady if _nameable_by_shape(t, tr)],
        "shape": [(t.id,) for t in steady],
        "size": [(t.id,) for t in steady],
        "count": [()],
        "direction": [(t.id,) for t in moving],
        "speed": [(a.id, b.id) for i, a in enumerate(moving) for b in moving[i + 1 :]],
        "order": [(a.id, b.id) for i, a in enumerate(steady) for b in steady[i + 1 :]],
        "disappear": [()],
        "color_change": [(t.id,) for t in tr.values() if len(t.color_changes) == 1],
        "changed_object": [()],
        "count_change": [()],
    }
    boring = {
        "speed": SAME_SPEED,
        "order": SAME_TIME,
        "disappear": NONE,
        "changed_object": NONE,
        "count_change": "same",
    }
    out = []
    for qtype, choices in options.items():
        good = [c for c in choices if _answer(qtype, c, states, tr) not in (None, boring.get(qtype))]
        if good:
            qa = _make(rng, qtype, good[int(rng.integers(len(good)))], states, tr)
            if qa is not None:
                out.append(qa)
    return out


def image_questions(state: FrameState, rng: np.random.Generator) -> list[QA]:
    """Static questions about one frame: at most one per image question type."""
    states = [state]
    tr = tracks(states)
    objs = list(tr.values())
    options: dict[str, list[tuple[int, ...]]] = {
        "color": [(t.id,) for t in objs if _nameable_by_shape(t, tr)],
        "shape": [(t.id,) for t in objs],
        "size": [(t.id,) for t in objs],
        "count": [()],
        "position": [(t.id,) for t in objs if _answer("position", (t.id,), states, tr) is not None],
    }
    out = []
    for qtype, choices in options.items():
        if choices:
            qa = _make(rng, qtype, choices[int(rng.integers(len(choices)))], states, tr, medium="image")
            if qa is not None:
                out.append(qa)
    return out
