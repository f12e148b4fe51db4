"""The study's image align step (`videollm.bench.study_align`): patch targets, config errors, and a real fit of
the tiny image-LLM's projector on the starter's shipped tower and rendered world frames."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from videollm.bench.study import ALIGN_FILE, StudyError, image_frames, image_init, load_study, prepare_world
from videollm.bench.study_align import PATCH_VOCAB, patch_labels, patch_targets
from videollm.data.world import FrameState, ObjectState

CONFIG = Path(__file__).resolve().parents[1] / "train" / "recipes" / "study.yaml"


def test_patch_targets_sum_the_words_of_the_covering_object():
    red_square = ObjectState(id=0, shape="square", color="red", size="large", x=0.25, y=0.25)
    state: FrameState = (red_square,)
    labels = patch_labels(state, size=64, grid=8)
    covered = labels[0] > 0
    assert 0 < int(covered.sum()) < 64 and bool((labels[:, ~covered] == 0).all())
    assert {int(v) for v in labels[0][covered]} == {PATCH_VOCAB[0].index("red") + 1}
    assert {int(v) for v in labels[1][covered]} == {PATCH_VOCAB[1].index("square") + 1}
    vocab = [torch.randn(len(words), 16) for words in PATCH_VOCAB]
    targets = patch_targets(labels, vocab)
    want = vocab[0][PATCH_VOCAB[0].index("red")] + vocab[1][PATCH_VOCAB[1].index("square")]
    want = want + vocab[2][PATCH_VOCAB[2].index("large")]
    assert torch.allclose(targets[covered], want.expand(int(covered.sum()), -1))
    assert bool((targets[~covered] == 0).all())  # background: "nothing here"


def test_image_align_config_errors_name_the_field():
    with pytest.raises(StudyError, match=r"image_align: unknown field\(s\) \['epochs'\]; fields: steps, lr"):
        load_study(CONFIG, "small", ["image_align.epochs=3"])
    with pytest.raises(StudyError, match="image_align needs a pretrained tower"):
        load_study(CONFIG, "small", ["tower=null", "image_align.steps=5"])
    with pytest.raises(StudyError, match=r"image_align: steps must be >= 1 and lr > 0"):
        load_study(CONFIG, "small", ["image_align.steps=0"])
    with pytest.raises(StudyError, match="image_align: steps must be an integer and lr a number"):
        load_study(CONFIG, "small", ["image_align.lr=fast"])
    # YAML reads 3e-3 as a string; the study reads it as the number it means
    assert load_study(CONFIG, "small", ["image_align.lr=3e-3"]).image_align == {"steps": 300, "lr": 3e-3}


def test_image_align_fits_the_projector_onto_word_embeddings(tmp_path):
    cfg = load_study(
        CONFIG,
        "small",
        ["world.num_videos=4", "world.num_test_videos=1", "image_align.steps=150", "image_align.lr=3e-3"],
    )
    world = prepare_world(cfg, tmp_path / "work", print)
    out = image_init(cfg, tmp_path / "init", print, world)
    measured = json.loads((out / ALIGN_FILE).read_text())
    # 4 clips × the image stage's frames × 64 patches; the starter's tower knows each patch's colour, so the
    # projector learns to point object patches at their colour word (chance: 1 in 8)
    assert measured["tokens"] == 4 * len(image_frames(16, cfg.image_frame_stride)) * 64
    assert measured["nearest_color_accuracy"] > 60 and measured["cosine"] > 0.5
