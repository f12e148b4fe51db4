"""The study's multiple-choice reply order (`videollm.bench.study_mc`, `study.mc_reply`): the rewritten
records, the text stage's replies, config errors, and that MVBench's extraction scores an answer-first
reply by its letter for every answer the world writes."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest

from videollm.bench.study import StudyError, load_study, prepare_world
from videollm.bench.study_mc import reorder_mc
from videollm.bench.study_text import text_samples
from videollm.data.formats import mc_reply
from videollm.data.synthetic import render_world
from videollm.eval.choices import extract_choice

CONFIG = Path(__file__).resolve().parents[1] / "train" / "recipes" / "study.yaml"


def test_mc_reply_orders_and_rejects_an_unknown_order():
    assert mc_reply("B", "not moving") == "(B) not moving"
    assert mc_reply("B", "not moving", "answer_first") == "not moving (B)"
    with pytest.raises(ValueError, match="mc_reply must be one of letter_first, answer_first, got 'last'"):
        mc_reply("B", "up", "last")


def test_answer_first_replies_are_scored_by_their_letter_for_every_world_answer(tmp_path):
    render_world(tmp_path, num_videos=4, num_test_videos=2, frames=8, size=32)
    questions = [
        json.loads(line)
        for split in ("train", "test")
        for line in (tmp_path / split / "qa.jsonl").read_text().splitlines()
    ]
    answers = {c for q in questions for c in q["candidates"]}
    assert {"not moving", "same speed"} & answers  # multi-word answers are among them
    for q in questions:
        for i, option in enumerate(q["candidates"]):
            letter = string.ascii_uppercase[i]
            got = extract_choice("mvbench", mc_reply(letter, option, "answer_first"), q["candidates"])
            assert (got.letter, got.extracted) == (letter, True), (option, letter)


def test_reorder_mc_rewrites_only_multiple_choice_records(tmp_path):
    render_world(tmp_path, num_videos=2, num_test_videos=1, frames=8, size=32)
    records = json.loads((tmp_path / "train" / "instruct.json").read_text())
    out = reorder_mc(records, "answer_first")
    assert reorder_mc(records, "letter_first") is records
    assert len(out) == len(records)
    mc = 0
    for before, after in zip(records, out, strict=True):
        old, new = before["conversations"][1]["value"], after["conversations"][1]["value"]
        if before.get("form") == "mc":
            mc += 1
            assert new == f"{old[4:]} ({old[1]})"
        else:
            assert after == before
    assert mc > 0
    assert (
        records[0]["conversations"]
        == json.loads((tmp_path / "train" / "instruct.json").read_text())[0]["conversations"]
    )  # the input is not modified
    bad = [
        {
            "id": "x_mc",
            "form": "mc",
            "conversations": [{"from": "human", "value": "?"}, {"from": "gpt", "value": "up"}],
        }
    ]
    with pytest.raises(
        ValueError, match=r"x_mc: multiple-choice reply 'up' is not the world's '\(LETTER\) answer' form"
    ):
        reorder_mc(bad, "answer_first")


def test_text_samples_write_answer_first_replies(tmp_path):
    render_world(tmp_path, num_videos=2, num_test_videos=1, frames=8, size=32)
    for s in text_samples(tmp_path / "train", copies=2, seed=0, mc_order="answer_first"):
        if "_text_mc" in s["id"]:
            prompt, reply = (t["value"] for t in s["conversations"])
            answer, letter = reply[:-4], reply[-2]
            assert reply.endswith(")") and f"({letter}) {answer}\n" in prompt


def test_prepare_world_writes_every_stage_in_the_configured_order(tmp_path):
    world = {"seed": 0, "frames": 8, "size": 32, "fps": 8.0, "num_videos": 2, "num_test_videos": 1}
    cfg = load_study(CONFIG, "small", [f"world={json.dumps(world)}", "mc_reply=answer_first"])
    root = prepare_world(cfg, tmp_path, log=lambda _: None)
    replies = [
        t["value"]
        for name in ("study_image.json", "study_video.json")
        for r in json.loads((root / "train" / name).read_text())
        for t in r["conversations"]
        if t["from"] == "gpt"
    ]
    assert any(v.endswith(")") and v[-3] == "(" for v in replies)
    assert not any(v.startswith("(") and v[2:4] == ") " for v in replies)  # no letter-first reply left


def test_an_unknown_mc_reply_is_refused_naming_the_field():
    with pytest.raises(StudyError, match="mc_reply must be one of letter_first, answer_first, got 'last'"):
        load_study(CONFIG, "small", ["mc_reply=last"])
