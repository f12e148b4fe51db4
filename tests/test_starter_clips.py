"""The starter's training data: description words agree with the world's own answers; recipe checks."""

from __future__ import annotations

import numpy as np
import pytest

from videollm.data.questions import NO_MOTION, NONE
from videollm.starter.clips import (
    COLORS,
    IGNORE,
    NUM_TOKENS,
    SLOT_FIELDS,
    WORDS,
    codec_noise,
    make_clip,
    slot_labels,
    slot_words,
)


def _slots(words):
    k = len(SLOT_FIELDS)
    return {
        COLORS[i]: dict(zip(SLOT_FIELDS, words[i * k : (i + 1) * k], strict=True)) for i in range(len(COLORS))
    }


def _name_slot(slots, name):
    color, shape = name.split()
    s = slots[color]
    assert s["shape"] == shape, (name, s)
    return s


def _derive(qa, words):
    """The question's short answer read off the description (None: the description does not decide it)."""
    slots = _slots(words)
    present = {c: s for c, s in slots.items() if s["color"] != NONE}
    if qa.qtype == "count":
        return words[-3]
    if qa.qtype == "count_change":
        a, b = int(words[-3]), int(words[-2])
        assert words[-1] == ("more" if b > a else "fewer" if b < a else "same")
        return words[-1]
    if qa.qtype == "shape":
        return present[
            qa.question.split()[-2] if qa.question.startswith("What") else qa.question.split()[-1].rstrip("?")
        ]["shape"]
    if qa.qtype == "color":
        hits = [
            c
            for c, s in present.items()
            if s["shape"] in qa.question
            and (s["size"] in qa.question or sum(t["shape"] == s["shape"] for t in present.values()) == 1)
        ]
        return hits[0] if len(hits) == 1 else None
    if qa.qtype in ("disappear", "changed_object"):
        key = "disappears" if qa.qtype == "disappear" else None
        hits = [
            f"{c} {s['shape']}"
            for c, s in present.items()
            if (s["event"] == key if key else s["event"] in COLORS)
        ]
        return hits[0] if len(hits) == 1 else NONE if not hits else None
    names = [n for n in (f"{c} {s['shape']}" for c, s in present.items()) if n in qa.question]
    if qa.qtype == "direction":
        motion = _name_slot(slots, names[0])["motion"]
        return NO_MOTION if motion == "still" else motion
    if qa.qtype == "color_change":
        return _name_slot(slots, names[0])["event"]
    if qa.qtype == "order":
        late = [n for n in names if _name_slot(slots, n)["event"] == "appears"]
        return next(n for n in names if n not in late) if len(late) == 1 else None
    if qa.qtype == "speed":
        fast = [n for n in names if _name_slot(slots, n)["speed"] == "fast"]
        return fast[0] if len(fast) == 1 else None
    return None


def test_description_answers_the_questions():
    """Every question of 60 clips is answered correctly by reading the description of its full clip:
    the tokens the vision stage learns carry exactly what the questions ask."""
    checked = 0
    for index in range(60):
        clip = make_clip(0, "train", index)
        words = slot_words(clip.item.states)
        for qa in clip.item.questions:
            derived = _derive(qa, words)
            if derived is None:
                continue
            assert derived == qa.answer, (index, qa.question, qa.answer, words)
            checked += 1
    assert checked > 150


def test_labels_shape_and_words():
    clip = make_clip(3, "test", 1)
    labels = slot_labels(clip.states)
    assert labels.shape == (NUM_TOKENS,)
    words = slot_words(clip.states)
    for w, lab in zip(words, labels, strict=True):
        assert (lab == IGNORE) if w is None else WORDS[lab] == w
    assert clip.frames.shape == (8, 64, 64, 3)
    assert list(clip.indices) == [0, 2, 4, 6, 8, 10, 12, 15]  # lmms-eval's linspace over 16 frames


def test_codec_noise_is_slight_but_real():
    clip = make_clip(0, "train", 0)
    noisy = codec_noise(clip.frames, np.random.default_rng(0))
    assert noisy.dtype == np.uint8 and noisy.shape == clip.frames.shape
    diff = np.abs(noisy.astype(int) - clip.frames.astype(int))
    assert 0 < diff.mean() < 8
    assert not np.array_equal(noisy, clip.frames)


def test_recipes_load(tmp_path):
    from videollm.starter.train import load_starter_recipe

    full = load_starter_recipe("train/recipes/starter.yaml")
    assert [s.name for s in full.stages] == ["tower", "vision", "align", "finetune"]
    short = load_starter_recipe("train/recipes/starter_short.yaml", ["stages.3.steps=3"])
    assert short.stages[3].steps == 3


def test_recipe_errors_name_file_and_field(tmp_path):
    from videollm.starter.train import load_starter_recipe
    from videollm.train.recipe import RecipeError

    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  - {name: finetune, steps: 2}\n  - {name: vision, steps: 2}\n")
    with pytest.raises(RecipeError, match=r"bad\.yaml.*in that order"):
        load_starter_recipe(bad)
    bad.write_text("stages:\n  - {name: vision, stepz: 2}\n")
    with pytest.raises(RecipeError, match=r"bad\.yaml.*stepz.*steps"):
        load_starter_recipe(bad)


def test_frame_targets_agree_with_the_rendered_pixels():
    """Every patch labelled with an object holds that object's colour; every object's weights sum to 1
    over the patches it covers; the centre offsets point back at the object's centre."""
    from videollm.data.world import PALETTE, SHAPES, SIZES, render_states
    from videollm.starter.clips import frame_targets

    clip = make_clip(3, "train", 5)
    for state in clip.states:
        pixels = render_states([state], 64)[0]
        t = frame_targets(state, 64, 8)
        assert t.patches.shape == (5, 8, 8) and t.weights.shape == (len(state), 8, 8)
        np.testing.assert_allclose(t.weights.sum(axis=(1, 2)), 1.0, rtol=1e-5)
        for k, o in enumerate(state):
            assert tuple(t.objects[k]) == (
                COLORS.index(o.color),
                SHAPES.index(o.shape),
                list(SIZES).index(o.size),
            )
            gy, gx = np.nonzero(t.patches[0] == COLORS.index(o.color) + 1)
            assert len(gy) > 0
            for y, x in zip(gy, gx, strict=True):
                block = pixels[y * 8 : (y + 1) * 8, x * 8 : (x + 1) * 8].reshape(-1, 3)
                assert (block == PALETTE[o.color]).all(axis=1).any()
                assert abs((x + 0.5 + t.patches[3, y, x]) / 8 - o.x) < 1e-5
                assert abs((y + 0.5 + t.patches[4, y, x]) / 8 - o.y) < 1e-5
        assert (t.patches[0] == 0).sum() == (t.weights.sum(axis=0) == 0).sum()


def test_patch_words_label_each_objects_patches_with_its_slot_words():
    """Per patch and frame: the motion/speed/event of the object covering it, the same words its slot gets."""
    from videollm.starter.clips import PATCH_FIELDS, frame_targets, patch_words

    checked = 0
    for index in range(6):
        clip = make_clip(3, "train", index)
        targets = [frame_targets(s, 64, 8) for s in clip.states]
        labels = patch_words(clip.states, [t.owners for t in targets])
        assert labels.shape == (len(PATCH_FIELDS), len(clip.states), 8, 8)
        slots = _slots(slot_words(clip.states))
        first_colour = {}
        for state in clip.states:
            for o in state:
                first_colour.setdefault(o.id, o.color)
        for f, (state, t) in enumerate(zip(clip.states, targets, strict=True)):
            assert ((t.owners >= 0) == (t.patches[0] > 0)).all()
            assert (labels[:, f][:, t.owners < 0] == IGNORE).all()
            for o in state:
                mine = t.owners == o.id
                slot = slots[first_colour[o.id]]
                for j, field in enumerate(PATCH_FIELDS):
                    want = IGNORE if slot[field] is None else WORDS.index(slot[field])
                    assert (labels[j, f][mine] == want).all(), (field, slot)
                    checked += int(mine.sum())
    assert checked > 100
