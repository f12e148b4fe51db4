"""Each loader on files written here in the benchmark's official format, with real tiny videos."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from videollm.eval.loaders import load_items
from videollm.eval.prompts import videomme_subtitle
from videollm.eval.tasks import TaskError, all_specs, load_spec, resolve_tasks
from videollm.video.encode import write_video

SPECS = all_specs()


def video(path: Path, frames: int = 8) -> Path:
    """A real tiny clip (.mp4 H.264, .avi MPEG-4 part 2, or an animated .gif)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = [np.full((32, 32, 3), (25 * i) % 256, np.uint8) for i in range(frames)]
    if path.suffix == ".gif":
        Image.fromarray(pixels[0]).save(
            path, save_all=True, append_images=[Image.fromarray(p) for p in pixels[1:]]
        )
    else:
        write_video(path, pixels, fps=8, codec="mpeg4" if path.suffix == ".avi" else "libx264")
    return path


def dump(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def test_every_shipped_spec_loads_and_names_a_loader():
    from videollm.eval.loaders import LOADERS

    assert {
        "msvd_qa",
        "msrvtt_qa",
        "tgif_qa",
        "activitynet_qa",
        "mvbench",
        "videomme",
        "videomme_w_subtitle",
        "nextqa_mc",
        "egoschema",
        "msrvtt_caption",
        "msvd_caption",
        "synthetic_qa",
        "synthetic_mc",
        "synthetic_caption",
    } <= set(SPECS)
    for spec in SPECS.values():
        assert spec.format in LOADERS, spec.path
        assert spec.source, f"{spec.path} must cite where its format/prompt/scoring come from"
    assert [s.task for s in resolve_tasks("synthetic")] == [
        "synthetic_qa",
        "synthetic_mc",
        "synthetic_caption",
    ]


def test_msvd_qa_original_release(tmp_path):
    root = tmp_path / "MSVD-QA"
    dump(
        root / "test_qa.json",
        [
            {"answer": "dog", "id": 0, "question": "what is running?", "video_id": 1},
            {"answer": "man", "id": 1, "question": "who is cooking?", "video_id": 2},
        ],
    )
    (root / "youtube_mapping.txt").write_text("-4wsuPCjDBc_5_15 vid1\nabc_1_9 vid2\n")
    video(root / "YouTubeClips" / "-4wsuPCjDBc_5_15.avi")
    items = load_items(SPECS["msvd_qa"], tmp_path)
    assert [(i.id, i.answer, i.groups["qtype"]) for i in items] == [("0", "dog", "what"), ("1", "man", "who")]
    assert (
        items[0].video == root / "YouTubeClips" / "-4wsuPCjDBc_5_15.avi"
        and items[0].prompt == "what is running?"
    )
    assert (
        items[1].video is None
        and "abc_1_9" in items[1].video_error
        and "YouTubeClips" in items[1].video_error
    )


def test_msvd_qa_video_chatgpt_packaging(tmp_path):
    root = tmp_path / "GPT_Zero_Shot_QA" / "MSVD_Zero_Shot_QA"
    dump(
        root / "test_q.json",
        [
            {"video_name": "clipA", "question_id": "v_clipA_0", "question": "what is it?"},
            {"video_name": "clipA", "question_id": "v_clipA_1", "question": "how many?"},
        ],
    )
    dump(
        root / "test_a.json",
        [{"answer": "cat", "question_id": "v_clipA_0"}, {"answer": "two", "question_id": "v_clipA_1"}],
    )
    video(root / "videos" / "clipA.mp4")
    items = load_items(SPECS["msvd_qa"], tmp_path)
    assert [(i.id, i.answer) for i in items] == [("v_clipA_0", "cat"), ("v_clipA_1", "two")]
    assert all(i.video == root / "videos" / "clipA.mp4" for i in items)


def test_msrvtt_qa_original(tmp_path):
    root = tmp_path / "msrvtt_qa"
    dump(
        root / "test_qa.json",
        [{"answer": "clip", "category_id": 0, "id": 158581, "question": "what is shown?", "video_id": 7010}],
    )
    video(root / "video" / "video7010.mp4")
    (item,) = load_items(SPECS["msrvtt_qa"], tmp_path)
    assert item.video.name == "video7010.mp4" and item.id == "158581" and item.groups == {"qtype": "what"}


def test_tgif_frameqa_tsv(tmp_path):
    root = tmp_path / "tgif_qa"
    root.mkdir()
    with open(root / "Test_frameqa_question.csv", "w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["gif_name", "question", "answer", "type", "vid_id", "key"])
        w.writerow(["tumblr_abc", "what is the color of the car", "red", "2", "gif_1", "100"])
        w.writerow(["tumblr_def", "how many dogs are there", "two", "1", "gif_2", "101"])
    video(root / "gifs" / "tumblr_abc.gif")
    video(root / "mp4" / "tumblr_def.mp4")
    a, b = load_items(SPECS["tgif_qa"], tmp_path)
    assert (a.answer, a.groups["qtype"], a.video.suffix) == ("red", "color", ".gif")
    assert (b.groups["qtype"], b.video.suffix) == ("number", ".mp4")


def test_activitynet_qa_release_and_prompt(tmp_path):
    root = tmp_path / "activitynet_qa"
    dump(
        root / "test_q.json",
        [{"video_name": "xyz123", "question_id": "v_xyz123_0", "question": "what is the man doing"}],
    )
    dump(root / "test_a.json", [{"answer": "surfing", "type": 0, "question_id": "v_xyz123_0"}])
    video(root / "all_test" / "v_xyz123.mp4")
    (item,) = load_items(SPECS["activitynet_qa"], tmp_path)
    # lmms-eval activitynetqa_doc_to_text: capitalize() + "?" + post_prompt
    assert item.prompt == "What is the man doing? Answer the question using a single word or phrase."
    assert item.question == "what is the man doing" and item.groups["qtype"] == "motion"
    assert item.video.name == "v_xyz123.mp4"


def test_mvbench_subtasks_bounds_and_prompt(tmp_path):
    root = tmp_path / "MVBench"
    dump(
        root / "json" / "action_sequence.json",
        [
            {
                "video": "ZS9XR.mp4",
                "question": "What happened after the person took the food?",
                "candidates": [
                    "Ate the medicine.",
                    "Tidied up the blanket.",
                    "Put down the cup/glass/bottle.",
                    "Took the box.",
                ],
                "answer": "Ate the medicine.",
                "start": 11.1,
                "end": 19.6,
            },
            {
                "video": "CUT01.mp4",
                "question": "q?",
                "candidates": ["x", "y"],
                "answer": "y",
                "start": 1.0,
                "end": 2.0,
            },
        ],
    )
    dump(
        root / "json" / "moving_direction.json",
        [
            {
                "video": "video_10000.mp4",
                "question": "Which way?",
                "candidates": ["left", "up", "right"],
                "answer": "right",
            }
        ],
    )
    video(root / "video" / "star" / "Charades_v1_480" / "ZS9XR.mp4")  # Ask-Anything layout: bounds apply
    video(root / "star" / "Charades_segment" / "CUT01.mp4")  # lmms-eval's pre-cut segment: not applied twice
    items = {i.id: i for i in load_items(SPECS["mvbench"], tmp_path)}
    first = items["action_sequence/0"]
    assert first.prompt == (
        "Question:What happened after the person took the food?\nOption:\n(A) Ate the medicine.\n"
        "(B) Tidied up the blanket.\n(C) Put down the cup/glass/bottle.\n(D) Took the box.\nOnly give the best option.\n"
    )
    assert (first.answer, first.start, first.end, first.groups) == (
        "A",
        11.1,
        19.6,
        {"subtask": "action_sequence"},
    )
    cut = items["action_sequence/1"]
    assert cut.video.parent.name == "Charades_segment" and (cut.start, cut.end, cut.answer) == (
        None,
        None,
        "B",
    )
    moving = items["moving_direction/0"]
    assert moving.video is None and "clevrer/video_validation" in moving.video_error and moving.answer == "C"


def test_mvbench_answer_must_be_a_candidate(tmp_path):
    dump(
        tmp_path / "mvbench" / "json" / "action_count.json",
        [{"video": "a.mp4", "question": "q", "candidates": ["1", "2"], "answer": "3"}],
    )
    with pytest.raises(
        TaskError, match=r"action_count.json record 0: answer '3' is not one of its candidates"
    ):
        load_items(SPECS["mvbench"], tmp_path)


VIDEOMME_RECORD = {
    "video_id": "001",
    "duration": "short",
    "domain": "Knowledge",
    "sub_category": "Humanity & History",
    "url": "https://www.youtube.com/watch?v=fFjv93ACGo8",
    "videoID": "fFjv93ACGo8",
    "question_id": "001-1",
    "task_type": "Counting Problem",
    "question": "When demonstrating the Germany modern Christmas tree is initially decorated with apples, candles and berries, which kind of the decoration has the largest number?",
    "options": ["A. Apples.", "B. Candles.", "C. Berries.", "D. The three kinds are of the same number."],
    "answer": "C",
}


def test_videomme_records_and_prompt(tmp_path):
    root = tmp_path / "videomme"
    (root / "videomme.jsonl").parent.mkdir(parents=True)
    (root / "videomme.jsonl").write_text(json.dumps(VIDEOMME_RECORD) + "\n")
    video(root / "data" / "fFjv93ACGo8.mp4")
    (item,) = load_items(SPECS["videomme"], tmp_path)
    assert item.prompt == (
        "Select the best answer to the following multiple-choice question based on the video and the subtitles. "
        "Respond with only the letter (A, B, C, or D) of the correct option.\n"
        + VIDEOMME_RECORD["question"]
        + "\n"
        "A. Apples.\nB. Candles.\nC. Berries.\nD. The three kinds are of the same number.\n"
        "\nAnswer with the option's letter from the given choices directly."
    )
    assert item.answer == "C" and item.options[0] == "Apples." and item.groups["duration"] == "short"


def test_videomme_nested_form_without_subtitle_file(tmp_path):
    root = tmp_path / "videomme"
    nested = {
        k: v
        for k, v in VIDEOMME_RECORD.items()
        if k in ("video_id", "duration", "domain", "sub_category", "videoID")
    }
    nested["questions"] = [
        {k: VIDEOMME_RECORD[k] for k in ("question_id", "task_type", "question", "options", "answer")}
    ]
    dump(root / "videomme.json", [nested])
    (item,) = load_items(SPECS["videomme_w_subtitle"], tmp_path)
    assert item.prompt.startswith(
        "This video's subtitles are listed below: \nNo subtitles available\nSelect the best"
    )
    assert item.prompt.endswith("D. The three kinds are of the same number.\nThe best answer is:")


def test_videomme_subtitle_selection():
    srt = (
        '1\n00:00:00,000 --> 00:00:01,000\n<font color="white" size=".72c">hello there</font>\n\n'
        '2\n00:00:05,000 --> 00:00:06,000\n<font color="white" size=".72c">middle line</font>\n\n'
        "3\n00:00:09,000 --> 00:00:10,000\nplain line without a font tag\n\n"
    )
    # 10 s at 10 fps; 4 sampled frames: 0, 33, 66, 99 → only block 1 (frames 0-9) and block 3 (90-99)
    assert (
        videomme_subtitle(srt, fps=10, total_frames=100, frame_num=4)
        == "hello there\nplain line without a font tag"
    )
    assert videomme_subtitle(srt, fps=10, total_frames=100, frame_num=-1).split("\n") == [
        "hello there",
        "middle line",
        "plain line without a font tag",
    ]


def test_nextqa_mc_csv_with_mapping(tmp_path):
    root = tmp_path / "nextqa"
    root.mkdir()
    with open(root / "test.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "video",
                "frame_count",
                "width",
                "height",
                "question",
                "answer",
                "qid",
                "type",
                "a0",
                "a1",
                "a2",
                "a3",
                "a4",
            ]
        )
        w.writerow(
            [
                "4010069381",
                369,
                640,
                480,
                "how do the two man play the instrument",
                4,
                6,
                "CH",
                "roll the handle",
                "tap their feet",
                "strum the string",
                "hit with sticks",
                "pat with hand",
            ]
        )
    dump(root / "map_vid_vidorID.json", {"4010069381": "1106/4010069381"})
    video(root / "NExTVideo" / "1106" / "4010069381.mp4")
    (item,) = load_items(SPECS["nextqa_mc"], tmp_path)
    assert item.prompt == (
        "how do the two man play the instrument\nA. roll the handle\nB. tap their feet\nC. strum the string\n"
        "D. hit with sticks\nE. pat with hand"
    )
    assert (item.answer, item.id, item.groups) == ("E", "4010069381_6", {"type": "CH", "category": "causal"})
    assert item.video is not None


def test_egoschema_official_subset(tmp_path):
    root = tmp_path / "egoschema"
    q = {
        "q_uid": "0074f737-11cb-497d-8d07-77c3a8127391",
        "google_drive_id": "1x",
        "question": "What is c doing?",
    }
    q.update({f"option {k}": f"c is doing thing {k}" for k in range(5)})
    q2 = dict(q, q_uid="not-in-subset")
    dump(root / "questions.json", [q, q2])
    dump(root / "subset_answers.json", {q["q_uid"]: 3})
    video(root / "videos" / f"{q['q_uid']}.mp4")
    (item,) = load_items(SPECS["egoschema"], tmp_path)
    assert item.answer == "D" and item.id == q["q_uid"]
    assert item.prompt == (
        "What is c doing?\nA. c is doing thing 0\nB. c is doing thing 1\nC. c is doing thing 2\nD. c is doing thing 3\n"
        "E. c is doing thing 4\nAnswer with the option's letter from the given choices directly."
    )


def test_msrvtt_caption_videodatainfo(tmp_path):
    root = tmp_path / "msrvtt"
    dump(
        root / "test_videodatainfo.json",
        {
            "info": {},
            "videos": [
                {"video_id": "video7010", "id": 7010, "split": "test"},
                {"video_id": "video1", "id": 1, "split": "train"},
            ],
            "sentences": [
                {"video_id": "video7010", "caption": "a man talks", "sen_id": 0},
                {"video_id": "video7010", "caption": "someone speaks", "sen_id": 1},
                {"video_id": "video1", "caption": "train caption", "sen_id": 2},
            ],
        },
    )
    video(root / "TestVideo" / "video7010.mp4")
    (item,) = load_items(SPECS["msrvtt_caption"], tmp_path)
    assert item.references == ("a man talks", "someone speaks") and item.video.name == "video7010.mp4"


def test_msvd_caption_corpus_csv_and_test_split(tmp_path):
    root = tmp_path / "msvd"
    root.mkdir()
    with open(root / "MSR Video Description Corpus.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["VideoID", "Start", "End", "WorkerID", "Source", "AnnotationTime", "Language", "Description"]
        )
        w.writerow(["abc", 1, 9, 1, "clean", 10, "English", "a cat plays"])
        w.writerow(["abc", 1, 9, 2, "clean", 10, "German", "eine Katze spielt"])
        w.writerow(["abc", 1, 9, 3, "clean", 10, "English", "the cat is playing"])
        w.writerow(["trainvid", 0, 5, 3, "clean", 10, "English", "a train video"])
    (root / "youtube_mapping.txt").write_text("trainvid_0_5 vid5\nabc_1_9 vid1301\n")
    video(root / "YouTubeClips" / "abc_1_9.avi")
    (item,) = load_items(SPECS["msvd_caption"], tmp_path)
    assert item.id == "abc_1_9" and item.references == ("a cat plays", "the cat is playing")


def test_synthetic_world_as_written_by_videollm_data_synth(tmp_path):
    from videollm.data.cli import main as data_main

    assert data_main(["synth", "--out", str(tmp_path / "w"), "--num-videos", "2", "--seed", "3"]) == 0
    test_split = tmp_path / "w" / "test"
    qa = load_items(SPECS["synthetic_qa"], test_split)
    mc = load_items(SPECS["synthetic_mc"], test_split)
    cap = load_items(SPECS["synthetic_caption"], tmp_path / "w")  # the world root works too (data_dirs: test)
    assert qa and len(qa) == len(mc) and cap
    assert {i.groups["type"] for i in qa} <= {"static", "temporal"} and all(
        i.video and i.video.exists() for i in qa
    )
    assert all(i.answer in "ABCDE" and i.prompt.endswith("Only give the best option.") for i in mc)
    assert all(len(i.references) >= 2 for i in cap)
    # the official-format copies written by the same command load with the benchmark loaders
    for task in ("msvd_qa", "mvbench", "msrvtt_caption"):
        items = load_items(SPECS[task], test_split)
        assert items and all(i.video is not None for i in items), task


def test_bad_specs_and_layouts(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: x\nkind: open_ended\nformat: video_qa\nprompts: oops\n")
    with pytest.raises(TaskError, match=r"unknown key\(s\) \['prompts'\]"):
        load_spec(bad)
    bad.write_text("task: x\nkind: essay\nformat: video_qa\n")
    with pytest.raises(TaskError, match="kind 'essay' is not one of"):
        load_spec(bad)
    with pytest.raises(TaskError, match="unknown task 'nope'"):
        resolve_tasks("nope")
    with pytest.raises(TaskError, match=r"none of \['test_qa.json', 'test_q.json'\] found"):
        load_items(SPECS["msvd_qa"], tmp_path)
    root = tmp_path / "activitynet_qa"
    dump(root / "test_q.json", [{"video_name": "a", "question_id": "q0", "question": "?"}])
    with pytest.raises(TaskError, match=r"its answers file test_a\.json is missing"):
        load_items(SPECS["activitynet_qa"], tmp_path)
    dump(root / "test_a.json", [])
    with pytest.raises(TaskError, match=r"has 1 questions but test_a\.json has 0 answers"):
        load_items(SPECS["activitynet_qa"], tmp_path)
    (tmp_path / "msvd_qa").mkdir()
    (tmp_path / "msvd_qa" / "test_qa.json").write_text("{not json")
    with pytest.raises(TaskError, match="not valid JSON"):
        load_items(SPECS["msvd_qa"], tmp_path)


def test_videomme_with_subtitles_picks_lines_at_the_sampled_frames(tmp_path):
    root = tmp_path / "videomme"
    dump(root / "videomme.json", [VIDEOMME_RECORD])
    video(root / "data" / "fFjv93ACGo8.mp4", frames=16)  # 2 s at 8 fps
    (root / "subtitle").mkdir()
    (root / "subtitle" / "fFjv93ACGo8.srt").write_text(
        '1\n00:00:00,000 --> 00:00:00,500\n<font color="white" size=".72c">first words</font>\n\n'
        '2\n00:00:00,500 --> 00:00:01,000\n<font color="white" size=".72c">second words</font>\n\n'
        '3\n00:00:05,000 --> 00:00:06,000\n<font color="white" size=".72c">after the end</font>\n\n'
    )
    (item,) = load_items(SPECS["videomme_w_subtitle"], tmp_path)
    assert item.prompt.startswith(
        "This video's subtitles are listed below: \nfirst words\nsecond words\nSelect the best"
    )
