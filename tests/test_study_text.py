"""The study's text stage (`videollm.bench.study_text`, `study.text_stage`): the text samples built from a
rendered world's questions, config errors, and a real text-stage run feeding the image stage."""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import pytest

from videollm.bench.study import StudyError, load_study
from videollm.bench.study_text import text_samples
from videollm.data.formats import SHORT_ANSWER_PROMPT
from videollm.data.synthetic import render_world

CONFIG = Path(__file__).resolve().parents[1] / "train" / "recipes" / "study.yaml"


def _questions(split: Path) -> list[dict]:
    return [json.loads(line) for name in ("qa.jsonl", "image_qa.jsonl") for line in open(split / name)]


def test_text_samples_put_the_answer_in_the_context_and_shuffle_the_letters(tmp_path):
    render_world(tmp_path, num_videos=3, num_test_videos=1, frames=8, size=32)
    questions = _questions(tmp_path / "train")
    samples = text_samples(tmp_path / "train", copies=3, seed=0)
    assert len(samples) == len(questions) * (1 + 3)
    assert all("video" not in s and "image" not in s for s in samples)  # text-only records
    by_id = {s["id"]: s for s in samples}
    letters = set()
    for q in questions:
        short = by_id[f"{q['id']}_text_short"]["conversations"]
        assert short[0]["value"] == f"{q['answer_sentence']}\n{q['question']}\n{SHORT_ANSWER_PROMPT}"
        assert short[1]["value"] == q["answer"]
        for k in range(3):
            prompt, reply = (t["value"] for t in by_id[f"{q['id']}_text_mc{k}"]["conversations"])
            assert prompt.startswith(f"{q['answer_sentence']}\nQuestion:{q['question']}\nOption:\n")
            letter = reply[1]
            assert reply == f"({letter}) {q['answer']}" and f"({letter}) {q['answer']}\n" in prompt
            options = [line[4:] for line in prompt.splitlines() if line[:1] == "(" and line[2:4] == ") "]
            assert sorted(options) == sorted(q["candidates"])
            if k == 0:  # the world's own order first
                assert options == q["candidates"] and letter == string.ascii_uppercase[q["answer_index"]]
            letters.add(letter)
    assert len(letters) >= 3  # the answer's letter moves between copies
    assert {s["type"] for s in samples} == {"static", "temporal"}
    with pytest.raises(ValueError, match="copies must be ≥ 1"):
        text_samples(tmp_path / "train", copies=0)
    with pytest.raises(FileNotFoundError, match=r"has no qa\.jsonl"):
        text_samples(tmp_path / "nowhere")


def test_text_stage_config_errors_name_the_field():
    with pytest.raises(StudyError, match=r"text_stage\.copies must be an integer >= 1"):
        load_study(CONFIG, "small", ["text_stage.copies=0"])
    with pytest.raises(StudyError, match="text_stage needs `tower:`"):
        load_study(CONFIG, "small", ["tower=null", "text_stage.max_steps=5"])


def test_pack_turns_asks_each_question_once_per_conversation_and_keeps_captions_single(tmp_path):
    from videollm.bench.study_turns import FORMS, pack_turns

    render_world(tmp_path, num_videos=3, num_test_videos=1, frames=8, size=32)
    records = json.loads((tmp_path / "train" / "instruct.json").read_text())
    questions = [r for r in records if "video" in r]
    captions = [r for r in json.loads((tmp_path / "train" / "align.json").read_text()) if "video" in r]
    packed = pack_turns(questions, captions, max_turns=4, captions_per_video=2, seed=0)
    convs = [s for s in packed if re.search(r"_r\d+_\d+$", s["id"])]  # VIDEO_QN_FORM_rROUND_PART
    singles = [s for s in packed if s not in convs]
    assert len(singles) == 2 * 3 and all(s in captions for s in singles)
    # every (question, form) pair of the world is asked exactly once across a clip's conversations
    reply = {(r["video"], r["conversations"][0]["value"].replace("<video>\n", "", 1)): r for r in questions}
    seen = []
    for s in convs:
        turns = s["conversations"]
        assert len(turns) <= 2 * 4 and turns[0]["value"].startswith("<video>\n")
        assert sum(t["value"].count("<video>") for t in turns) == 1  # the clip once, in the first turn
        asked = [t["value"].replace("<video>\n", "", 1) for t in turns[0::2]]
        base = [reply[(s["video"], q)]["id"].rsplit("_", 1)[0] for q in asked]
        assert len(set(base)) == len(base)  # no question twice in one conversation
        for q, a in zip(asked, turns[1::2], strict=True):
            assert a == reply[(s["video"], q)]["conversations"][1]
            seen.append(reply[(s["video"], q)]["id"])
    assert sorted(seen) == sorted(r["id"] for r in questions)
    assert {r["form"] for r in questions} == set(FORMS)
    with pytest.raises(ValueError, match="max_turns must be >= 1"):
        pack_turns(questions, captions, max_turns=0, captions_per_video=1, seed=0)


def test_replay_mixes_that_share_of_text_samples_into_a_stage(tmp_path):
    from videollm.bench.study import _data
    from videollm.data.llava import DataSource, LlavaDataset
    from videollm.video.sampling import FrameSampler

    render_world(tmp_path, num_videos=3, num_test_videos=1, frames=8, size=32)
    train = tmp_path / "train"
    video = [r for r in json.loads((train / "instruct.json").read_text()) if "video" in r]
    (train / "study_video.json").write_text(json.dumps(video))
    cfg = load_study(CONFIG, "small", ["text_stage.replay=0.25"])
    data = _data(tmp_path, "video", cfg)
    (stage, text) = data["files"]
    assert stage["path"].endswith("study_video.json") and "study_text_" in text["path"]
    sources = [DataSource(f["path"], f["media_root"], f.get("weight", 1.0)) for f in data["files"]]
    mixture = LlavaDataset(sources, FrameSampler.uniform(4))
    share = sum(m == "text" for m in mixture.modalities) / len(mixture)
    assert abs(share - 0.25) < 0.01
    assert len(_data(tmp_path, "video", load_study(CONFIG, "small", ["text_stage.replay=0"]))["files"]) == 1
    with pytest.raises(StudyError, match=r"text_stage\.replay must be a share in \[0, 1\)"):
        load_study(CONFIG, "small", ["text_stage.replay=1"])
