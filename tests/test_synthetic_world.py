"""The synthetic world in memory: scenes, rendering, answers re-derived from frames, captions."""

import itertools
import re

import numpy as np
import pytest

from videollm.data.captions import NUM_VARIANTS, image_captions, video_captions
from videollm.data.questions import (
    IMAGE_QTYPES,
    NO_MOTION,
    SAME_TIME,
    SENSITIVE_TO,
    STATIC_QTYPES,
    TEMPORAL_QTYPES,
    answer,
    image_questions,
    video_questions,
)
from videollm.data.synthetic import video_rngs
from videollm.data.world import (
    BACKGROUND,
    BOUND,
    COUNTER_BOX,
    NEVER,
    PALETTE,
    SIZES,
    Scene,
    SceneObject,
    make_scene,
    render_scene,
    render_states,
    scene_states,
)

FRAMES = 16
SEEDS = range(150)


def _clip(seed: int, frames: int = FRAMES):
    scene_rng, qa_rng = video_rngs(0, "train", seed)
    scene = make_scene(scene_rng)
    states = scene_states(scene, frames)
    return scene, states, video_questions(states, qa_rng)


@pytest.fixture(scope="module")
def clips():
    return [_clip(s) for s in SEEDS]


def _hand_scene() -> Scene:
    """A red circle moving right fast, a blue square appearing at 40 %, a green triangle turning yellow."""
    return Scene(
        (
            SceneObject(0, "circle", "red", "large", (0.4, 0.5), (0.5, 0.0)),
            SceneObject(1, "square", "blue", "small", (0.5, 0.85), (0.0, 0.0), appear=0.4),
            SceneObject(
                2, "triangle", "green", "small", (0.2, 0.8), (0.0, -0.22), new_color="yellow", change=0.5
            ),
        )
    )


def test_make_scene_is_a_pure_function_of_the_rng():
    for seed in range(20):
        a = make_scene(np.random.default_rng(seed))
        b = make_scene(np.random.default_rng(seed))
        assert a == b
        assert Scene.from_dict(a.to_dict()) == a
    assert len({make_scene(np.random.default_rng(s)) for s in range(20)}) == 20


@pytest.mark.parametrize("frames", [8, 16, 32])
def test_scenes_are_unambiguous_by_construction(frames):
    for seed in SEEDS:
        scene = make_scene(np.random.default_rng(seed))
        objs = scene.objects
        # One colour per object for the whole clip: a colour change picks a colour nobody else has.
        colors = [c for o in objs for c in {o.color, o.new_color} - {None}]
        assert len(colors) == len(set(colors)), scene
        assert any(o.appear == 0 and o.disappear == NEVER for o in objs), "some object must always be visible"
        for state in scene_states(scene, frames):
            assert state, "no frame may be empty"
            for o in state:
                reach = BOUND * SIZES[o.size]
                assert reach <= o.x <= 1 - reach and reach <= o.y <= 1 - reach, (seed, o)
                assert not (o.x - reach < COUNTER_BOX and o.y - reach < COUNTER_BOX), (
                    "counter corner",
                    seed,
                    o,
                )
            for a, b in itertools.combinations(state, 2):
                gap = np.hypot(a.x - b.x, a.y - b.y) - BOUND * (SIZES[a.size] + SIZES[b.size])
                assert gap > 0.02, ("overlap", seed, a, b)


def test_render_draws_each_shape_in_its_colour_at_any_size():
    scene = _hand_scene()
    for size in (32, 64, 100):
        video = render_scene(scene, 12, size)
        assert video.shape == (12, size, size, 3) and video.dtype == np.uint8
        for t, state in enumerate(scene_states(scene, 12)):
            for o in state:
                y, x = int(o.y * size), int(o.x * size)
                assert tuple(video[t, y, x]) == PALETTE[o.color], (size, t, o)
            n_colored = int((video[t] != BACKGROUND).any(-1).sum())
            assert n_colored > 0
    # Shapes differ in outline: the same-size circle, square and triangle cover different pixels.
    masks = []
    for shape in ("circle", "square", "triangle"):
        s = Scene((SceneObject(0, shape, "red", "large", (0.5, 0.5), (0.0, 0.0)),))
        masks.append((render_scene(s, 2, 64)[0] != BACKGROUND).any(-1))
    assert all(not np.array_equal(a, b) for a, b in itertools.combinations(masks, 2))
    # The triangle points up: its top rows are narrower than its bottom rows.
    rows = masks[2].sum(axis=1)
    filled = np.flatnonzero(rows)
    assert rows[filled[1]] < rows[filled[-2]]


def test_counter_is_stamped_with_the_frame_index():
    from videollm.video.counter import read_counter

    video = render_scene(_hand_scene(), 10, 64, counter=True)
    assert [read_counter(f) for f in video] == list(range(10))
    plain = render_scene(_hand_scene(), 10, 64)
    corner = int(64 * COUNTER_BOX)
    # Only the corner differs: the counter never covers a shape.
    assert np.array_equal(video[:, corner:, :], plain[:, corner:, :])
    assert np.array_equal(video[:, :, corner:], plain[:, :, corner:])


def test_answers_of_a_hand_made_scene_and_its_reversal():
    states = scene_states(_hand_scene(), FRAMES)
    back = states[::-1]
    frozen = [states[FRAMES // 2]] * FRAMES
    expect = {
        ("direction", (0,)): ("right", "left", NO_MOTION),
        ("direction", (2,)): ("up", "down", NO_MOTION),
        ("speed", (0, 2)): ("red circle", "red circle", "same speed"),
        ("order", (0, 1)): ("red circle", SAME_TIME, SAME_TIME),
        ("color_change", (2,)): ("yellow", "green", "no change"),
        ("changed_object", ()): ("green triangle", "yellow triangle", "none"),
        ("count_change", ()): ("more", "fewer", "same"),
        ("disappear", ()): ("none", "blue square", "none"),
        ("count", ()): (None, None, "3"),
        ("shape", (1,)): ("square", "square", "square"),
        ("color", (0,)): ("red", "red", "red"),
        ("size", (0,)): ("large", "large", "large"),
    }
    for (qtype, objects), (fwd, rev, frz) in expect.items():
        assert answer(qtype, objects, states) == fwd, qtype
        assert answer(qtype, objects, back) == rev, qtype
        assert answer(qtype, objects, frozen) == frz, qtype


def test_every_question_is_well_formed(clips):
    qtypes = set()
    for _, states, questions in clips:
        assert len({q.qtype for q in questions}) == len(questions), "at most one question per qtype"
        for q in questions:
            qtypes.add(q.qtype)
            assert q.type == ("temporal" if q.qtype in TEMPORAL_QTYPES else "static")
            assert q.question.endswith("?") and q.sentence.endswith(".") and q.sentence[0].isupper()
            assert 2 <= len(q.candidates) <= 5 and len(set(q.candidates)) == len(q.candidates)
            assert q.candidates[q.answer_index] == q.answer
            assert q.answer == answer(q.qtype, q.objects, states)
            if q.qtype not in ("count",):
                assert q.answer in q.sentence or q.answer.split()[-1] in q.sentence, q
    assert qtypes == set(STATIC_QTYPES) | set(TEMPORAL_QTYPES), "every question type occurs"


def test_temporal_answers_change_when_frames_are_reversed_frozen_or_shuffled(clips):
    """A temporal question needs time: re-deriving its answer from perturbed frames changes it."""
    shuffler = np.random.default_rng(0)
    counted = dict.fromkeys(TEMPORAL_QTYPES, 0)
    for _, states, questions in clips:
        perturbed = {"reverse": states[::-1], "freeze": [states[len(states) // 2]] * len(states)}
        shuffles = [[states[i] for i in shuffler.permutation(len(states))] for _ in range(20)]
        for q in questions:
            if q.type != "temporal":
                continue
            counted[q.qtype] += 1
            for how in SENSITIVE_TO[q.qtype]:
                assert answer(q.qtype, q.objects, perturbed[how]) != q.answer, (how, q)
            if q.qtype != "speed":  # speed is the same in any frame order; it needs motion (freeze)
                assert any(answer(q.qtype, q.objects, s) != q.answer for s in shuffles), ("shuffle", q)
    assert all(n >= 5 for n in counted.values()), counted


def test_static_answers_are_the_same_in_every_frame(clips):
    checked = 0
    for _, states, questions in clips:
        for q in questions:
            if q.type != "static":
                continue
            frames = [s for s in states if all(o in {x.id for x in s} for o in q.objects)]
            assert frames
            for s in frames:
                assert answer(q.qtype, q.objects, [s]) == q.answer, q
                checked += 1
            assert answer(q.qtype, q.objects, states[::-1]) == q.answer
    assert checked > 1000


def test_image_questions_are_static_and_answered_by_their_frame(clips):
    rng = np.random.default_rng(0)
    seen = set()
    for _, states, _ in clips[:40]:
        frame = states[len(states) // 2]
        for q in image_questions(frame, rng):
            seen.add(q.qtype)
            assert q.type == "static"
            assert q.answer == answer(q.qtype, q.objects, [frame])
            assert q.candidates[q.answer_index] == q.answer
    assert seen == set(IMAGE_QTYPES)


def test_captions_name_every_object_and_event(clips):
    for scene, states, _ in clips[:60]:
        captions = video_captions(states)
        assert len(captions) == NUM_VARIANTS and len(set(captions)) == NUM_VARIANTS
        for caption in captions:
            for o in scene.objects:
                assert f"{o.color} {o.shape}" in caption, (caption, o)
                if o.new_color:
                    assert o.new_color in caption.split(f"{o.color} {o.shape}", 1)[1]
            appears = any(o.appear > 0 for o in scene.objects)
            disappears = any(o.disappear < NEVER for o in scene.objects)
            assert appears == bool(re.search(r"\b(appears|shows up|comes into view|pops up)\b", caption))
            assert disappears == any(w in caption for w in ("disappears", "vanish"))
        pictures = image_captions(states[0])
        assert len(set(pictures)) == NUM_VARIANTS
        assert all(f"{o.color} {o.shape}" in pictures[0] for o in states[0])


def test_render_states_matches_render_scene():
    scene = _hand_scene()
    assert np.array_equal(render_states(scene_states(scene, 9), 48), render_scene(scene, 9, 48))
