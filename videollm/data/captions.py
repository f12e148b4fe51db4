"""Captions of the synthetic world: a reference caption and five paraphrases per clip or frame.

Like the questions, captions are derived from the frame states. The six variants say the same thing
(every object, its size, colour, shape, motion and events) in different words, which is what
captioning metrics with several references (CIDEr, METEOR) expect of MSR-VTT-style references.
"""

from __future__ import annotations

from collections.abc import Sequence

from videollm.data.questions import FAST, NO_MOTION, STILL, Track, direction, tracks
from videollm.data.world import FrameState

NUM_VARIANTS = 6  # the reference (variant 0) and five paraphrases

_SIZE_WORDS = {
    "small": ("small", "small", "little", "small", "little", "small"),
    "large": ("large", "big", "large", "big", "large", "big"),
}
_STILL = ("stays still", "does not move", "remains in place", "sits still", "stays where it is", "stays put")
_MOVE_VERBS = ("moves", "slides", "travels", "drifts", "heads", "glides")
_FAST = ("quickly", "fast", "rapidly", "swiftly", "quickly", "fast")
_SLOW = ("slowly", "slowly", "gently", "slowly", "unhurriedly", "leisurely")
_DIRS = (
    {"left": "to the left", "right": "to the right", "up": "upward", "down": "downward"},
    {"left": "left", "right": "right", "up": "up", "down": "down"},
    {"left": "to the left", "right": "to the right", "up": "upward", "down": "downward"},
    {"left": "leftward", "right": "rightward", "up": "up", "down": "down"},
    {
        "left": "toward the left",
        "right": "toward the right",
        "up": "toward the top",
        "down": "toward the bottom",
    },
    {"left": "left", "right": "right", "up": "upward", "down": "downward"},
)
_LATER = (
    "Later, ",
    "Partway through, ",
    "After a moment, ",
    "Midway through, ",
    "Some time later, ",
    "Later on, ",
)
_APPEARS = ("appears", "shows up", "appears", "comes into view", "appears", "pops up")
_VANISH = (
    " and then disappears",
    " before vanishing",
    " and then vanishes",
    ", then disappears",
    " until it disappears",
    " and later disappears",
)
_TURN = (
    " and turns {new}",
    ", changing from {old} to {new}",
    " and changes color to {new}",
    " and becomes {new}",
    ", then turns {new}",
    " and switches from {old} to {new}",
)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _subject(t: Track, k: int) -> str:
    words = f"{_SIZE_WORDS[t.size][k]} {t.colors[0]} {t.shape}"
    return f"{_article(words)} {words}"


def _motion(t: Track, k: int) -> str:
    # Any visible motion is described, even one too short to ask a direction question about.
    d = direction(t, min_distance=STILL)
    if d in (None, NO_MOTION):
        return _STILL[k]
    adverb = (_FAST if t.speed >= FAST else _SLOW)[k]
    return f"{_MOVE_VERBS[k]} {adverb} {_DIRS[k][d]}"


def _object_sentence(t: Track, k: int) -> str:
    motion = _motion(t, k)
    if t.frames[0] > 0:
        text = f"{_LATER[k]}{_subject(t, k)} {_APPEARS[k]} and {motion}"
    else:
        subject = _subject(t, k)
        text = subject[0].upper() + subject[1:] + " " + motion
    if t.frames[-1] < t.num_frames - 1:
        text += _VANISH[k]
    for old, new in t.color_changes:
        text += _TURN[k].format(old=old, new=new)
    return text + "."


def video_captions(states: Sequence[FrameState]) -> list[str]:
    """The reference caption and five paraphrases of a clip, objects in order of appearance."""
    tr = sorted(tracks(states).values(), key=lambda t: (t.frames[0], t.id))
    return [" ".join(_object_sentence(t, k) for t in tr) for k in range(NUM_VARIANTS)]


def _listing(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


_IMAGE = (
    "{List} on a dark background.",
    "A dark background with {list}.",
    "There {be} {list} in the image.",
    "{List} against a dark backdrop.",
    "This image shows {list}.",
    "The picture contains {list} on a dark background.",
)


def image_captions(state: FrameState) -> list[str]:
    """The reference caption and five paraphrases of one frame."""
    tr = list(tracks([state]).values())
    out = []
    for k, template in enumerate(_IMAGE):
        listed = _listing([_subject(t, k) for t in tr])
        be = "is" if len(tr) == 1 else "are"
        out.append(template.format(List=listed[0].upper() + listed[1:], list=listed, be=be))
    return out
