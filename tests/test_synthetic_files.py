"""The synthetic world on disk: reproducible mp4s, decodable frames, and every format as its reader
expects it (LLaVA training JSON, our manifests, MSVD-QA, Video-ChatGPT, MVBench, MSR-VTT)."""

import json
import os
import re
import string
import subprocess
import sys
from pathlib import Path

import av
import decord
import numpy as np
import pytest
from PIL import Image

from videollm.data import cli
from videollm.data.formats import MVBENCH_FOLDERS, mc_prompt
from videollm.data.questions import QTYPES
from videollm.data.synthetic import WORLD_FILE, load_world, make_item, render_world
from videollm.data.world import PALETTE
from videollm.video.counter import read_counter

ARGS = {"num_videos": 8, "num_test_videos": 4, "seed": 3, "frames": 16, "size": 64, "counter": True}
# lmms-eval 0.7.3 lmms_eval/tasks/mvbench/utils.py DATA_LIST: the 20 sub-tasks and their video folders.
LMMS_EVAL_MVBENCH = {
    "object_interaction": "star/Charades_segment",
    "action_sequence": "star/Charades_segment",
    "action_prediction": "star/Charades_segment",
    "action_localization": "sta/sta_video_segment",
    "moving_count": "clevrer/video_validation",
    "fine_grained_pose": "nturgbd_convert",
    "character_order": "perception/videos",
    "object_shuffle": "perception/videos",
    "egocentric_navigation": "vlnqa",
    "moving_direction": "clevrer/video_validation",
    "episodic_reasoning": "tvqa/video_fps3_hq_segment",
    "fine_grained_action": "Moments_in_Time_Raw/videos",
    "scene_transition": "scene_qa/video",
    "state_change": "perception/videos",
    "moving_attribute": "clevrer/video_validation",
    "action_antonym": "ssv2_video_mp4",
    "unexpected_action": "FunQA_test/test",
    "counterfactual_inference": "clevrer/video_validation",
    "object_existence": "clevrer/video_validation",
    "action_count": "perception/videos",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return render_world(tmp_path_factory.mktemp("world"), **ARGS)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _decode(path: Path) -> tuple[np.ndarray, float]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(stream)]), float(stream.average_rate)


def test_same_seed_same_bytes_and_annotations(world, tmp_path):
    again = render_world(tmp_path / "again", **ARGS)
    first, second = _files(world.root), _files(again.root)
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []
    assert sum(k.endswith(".mp4") for k in first) >= ARGS["num_videos"] + ARGS["num_test_videos"]


def test_other_seed_other_world_and_splits_never_share_a_clip(world, tmp_path):
    other = render_world(tmp_path / "other", **{**ARGS, "seed": 4})
    for split in ("train", "test"):
        a = _files(world.splits[split].dir / "videos")
        b = _files(other.splits[split].dir / "videos")
        assert not set(a.values()) & set(b.values())
        assert (world.splits[split].path("qa").read_text()) != other.splits[split].path("qa").read_text()
    train = set(_files(world.splits["train"].dir / "videos").values())
    test = set(_files(world.splits["test"].dir / "videos").values())
    assert not train & test


def test_a_clip_does_not_depend_on_how_many_are_rendered(world, tmp_path):
    small = render_world(tmp_path / "small", **{**ARGS, "num_videos": 3, "num_test_videos": 1})
    for name, data in _files(small.splits["train"].dir / "videos").items():
        assert (world.splits["train"].dir / "videos" / name).read_bytes() == data


def test_videos_decode_to_the_rendered_frames_with_their_counter(world):
    for split in world.splits.values():
        for item in split.items:
            path = split.dir / item.video
            frames, fps = _decode(path)
            assert frames.shape == (ARGS["frames"], ARGS["size"], ARGS["size"], 3)
            assert fps == item.fps == 8.0
            assert [read_counter(f) for f in frames] == list(range(ARGS["frames"]))
            vr = decord.VideoReader(str(path))
            assert len(vr) == ARGS["frames"]
            assert np.array_equal(vr.get_batch([0, 7, 15]).asnumpy(), frames[[0, 7, 15]])


def test_decoded_pixels_show_each_object_in_its_colour(world):
    names = list(PALETTE)
    palette = np.array([PALETTE[n] for n in names], dtype=float)
    checked = 0
    for split in world.splits.values():
        for item in split.items:
            frames, _ = _decode(split.dir / item.video)
            for t, state in enumerate(item.states):
                for o in state:
                    pixel = frames[t, int(o.y * item.size), int(o.x * item.size)].astype(float)
                    nearest = names[int(np.argmin(((palette - pixel) ** 2).sum(axis=1)))]
                    assert nearest == o.color, (item.video_id, t, o, pixel)
                    checked += 1
    assert checked > 200


def test_image_frames_are_the_lossless_middle_frame(world):
    for split in world.splits.values():
        for item in split.items:
            item2, pixels = make_item(
                world.seed, split.name, item.index, world.frames, world.size, world.fps, world.counter
            )
            png = np.asarray(Image.open(split.dir / item.image).convert("RGB"))
            assert np.array_equal(png, pixels[item.image_frame])
            assert item2.image_captions == item.image_captions


def test_world_json_and_load_world(world):
    loaded = load_world(world.root)
    assert loaded.to_dict() == world.to_dict() == json.loads((world.root / WORLD_FILE).read_text())
    for name, split in loaded.splits.items():
        assert split.num_videos == len(world.splits[name].items)
        for what in split.files:
            assert split.path(what).exists(), what
    with pytest.raises(KeyError, match="has no 'nope' file"):
        loaded.splits["train"].path("nope")
    with pytest.raises(FileNotFoundError, match="videollm data synth"):
        load_world(world.root / "train")


def test_llava_training_files(world):
    split = world.splits["train"]
    for what in ("llava_align", "llava_instruct"):
        samples = json.loads(split.path(what).read_text())
        assert isinstance(samples, list) and samples
        assert len({s["id"] for s in samples}) == len(samples)
        media = {"video": 0, "image": 0}
        for s in samples:
            (kind,) = [k for k in ("video", "image") if k in s]
            media[kind] += 1
            assert (split.dir / s[kind]).is_file()
            turns = s["conversations"]
            assert [t["from"] for t in turns] == ["human", "gpt"]
            assert turns[0]["value"].startswith(f"<{kind}>\n") and turns[0]["value"].count("<") == 1
            assert turns[1]["value"].strip()
            if what == "llava_instruct":
                assert s["form"] in ("open", "short", "mc") and s["qtype"] in QTYPES
                assert s["type"] in ("static", "temporal")
        assert media["video"] and media["image"], media
    # A multiple-choice reply names the right option: the letter of the answer among the options.
    by_id = {}
    for q in (json.loads(line) for line in split.path("qa").read_text().splitlines()):
        by_id[q["id"]] = q
    instruct = json.loads(split.path("llava_instruct").read_text())
    mc = [s for s in instruct if s["form"] == "mc" and "video" in s]
    for s in mc:
        q = by_id[s["id"].removesuffix("_mc")]
        letter = string.ascii_uppercase[q["answer_index"]]
        assert s["conversations"][1]["value"] == f"({letter}) {q['answer']}"
        assert s["conversations"][0]["value"] == "<video>\n" + mc_prompt(q["question"], q["candidates"])


def test_manifests(world):
    for split in world.splits.values():
        qa = [json.loads(line) for line in split.path("qa").read_text().splitlines()]
        assert len(qa) == split.num_questions == sum(len(i.questions) for i in split.items)
        assert sum(q["type"] == "static" for q in qa) == split.num_static
        for q in qa:
            assert q["type"] in ("static", "temporal") and q["qtype"] in QTYPES
            assert q["candidates"][q["answer_index"]] == q["answer"]
            assert (split.dir / q["video"]).is_file() and q["num_frames"] == ARGS["frames"]
            assert q["answer_sentence"].endswith(".")
        captions = [json.loads(line) for line in split.path("captions").read_text().splitlines()]
        assert len(captions) == split.num_videos
        assert all(len(c["paraphrases"]) == 5 and c["caption"] not in c["paraphrases"] for c in captions)
        scenes = [json.loads(line) for line in split.path("scenes").read_text().splitlines()]
        assert [len(s["states"]) for s in scenes] == [ARGS["frames"]] * split.num_videos
        image_qa = [json.loads(line) for line in split.path("image_qa").read_text().splitlines()]
        assert image_qa and all(
            (split.dir / q["image"]).is_file() and q["type"] == "static" for q in image_qa
        )


def test_msvd_qa_reads_as_the_original_release(world):
    """As the MSVD-QA loaders read it: `youtube_mapping.txt` maps vid<N> to a clip in YouTubeClips/."""
    split = world.splits["test"]
    mapping = {}
    for line in split.path("msvd_qa_mapping").read_text().splitlines():
        clip, vid = line.split()
        assert re.fullmatch(r"vid\d+", vid) and re.fullmatch(r".+_\d+_\d+", clip)
        mapping[int(vid[3:])] = clip
    entries = json.loads(split.path("msvd_qa").read_text())
    assert split.path("msvd_qa").name == "test_qa.json"
    assert [e["id"] for e in entries] == list(range(len(entries))) == list(range(split.num_questions))
    for e in entries:
        assert set(e) == {"answer", "id", "question", "video_id"}
        assert isinstance(e["video_id"], int) and isinstance(e["answer"], str) and e["question"].endswith("?")
        assert (split.path("msvd_qa_videos") / f"{mapping[e['video_id']]}.mp4").is_file()


def test_video_chatgpt_msvd_reads_as_video_llava_reads_it(world):
    """Video-LLaVA's run_inference_video_qa.py: questions and answers paired by index, video found by
    trying extensions after `video_name`."""
    split = world.splits["test"]
    questions = json.loads(split.path("video_chatgpt_msvd_q").read_text())
    answers = json.loads(split.path("video_chatgpt_msvd_a").read_text())
    assert len(questions) == len(answers) == split.num_questions
    reference = {e["id"]: e for e in json.loads(split.path("msvd_qa").read_text())}
    for index, sample in enumerate(questions):
        assert set(sample) == {"video_name", "question", "question_id"}
        assert answers[index]["question_id"] == sample["question_id"]
        assert answers[index]["answer"] == reference[index]["answer"]
        found = [
            f
            for f in (".mp4", ".avi", ".mov", ".mkv")
            if (split.path("video_chatgpt_msvd_videos") / f"{sample['video_name']}{f}").exists()
        ]
        assert found == [".mp4"]


def test_mvbench_reads_as_lmms_eval_and_videochat2_read_it(world):
    split = world.splits["test"]
    tasks = {
        k.removeprefix("mvbench_"): split.path(k)
        for k in split.files
        if k.startswith("mvbench_") and k != "mvbench_videos"
    }
    assert tasks and set(tasks) <= set(LMMS_EVAL_MVBENCH)
    temporal = sum(q.type == "temporal" for i in split.items for q in i.questions)
    total = 0
    for task, path in tasks.items():
        assert path.name == f"{task}.json" and path.parent.name == "json"
        assert MVBENCH_FOLDERS[task][0] == LMMS_EVAL_MVBENCH[task]
        for doc in json.loads(path.read_text()):
            total += 1
            assert {"video", "question", "candidates", "answer"} <= set(doc)
            assert doc["answer"] in doc["candidates"] and len(doc["candidates"]) <= 5
            assert (split.path("mvbench_videos") / LMMS_EVAL_MVBENCH[task] / doc["video"]).is_file()
            if task == "action_sequence":  # VideoChat2's data_list marks it "has start & end"
                assert 0 <= doc["start"] < doc["end"] <= ARGS["frames"] / 8.0
                assert (split.path("mvbench_videos") / "star/Charades_v1_480" / doc["video"]).is_file()
            # lmms-eval's mvbench_doc_to_text and the letter of the ground truth
            text = mc_prompt(doc["question"], doc["candidates"])
            letter = string.ascii_uppercase[doc["candidates"].index(doc["answer"])]
            assert f"({letter}) {doc['answer']}\n" in text and text.startswith("Question:")
    assert total == temporal


def test_msrvtt_reads_as_the_videodatainfo_release(world):
    for name, first, folder in (("test", 7010, "TestVideo"), ("train", 0, "TrainValVideo")):
        split = world.splits[name]
        data = json.loads(split.path("msrvtt_caption").read_text())
        assert set(data) == {"info", "videos", "sentences"}
        ids = [v["video_id"] for v in data["videos"]]
        assert ids == [f"video{first + i}" for i in range(split.num_videos)]
        for v in data["videos"]:
            assert set(v) == {"id", "video_id", "category", "url", "start time", "end time", "split"}
            assert isinstance(v["id"], int) and isinstance(v["category"], int) and v["split"] == name
            assert (split.path("msrvtt_videos") / f"{v['video_id']}.mp4").is_file()
            assert split.path("msrvtt_videos").name == folder
        per_video = {}
        for s in data["sentences"]:
            assert set(s) == {"sen_id", "video_id", "caption"} and isinstance(s["sen_id"], int)
            per_video.setdefault(s["video_id"], []).append(s["caption"])
        assert sorted(per_video) == sorted(ids) and {len(c) for c in per_video.values()} == {6}


def test_links_share_the_bytes_of_the_clip(world):
    split = world.splits["test"]
    item = split.items[0]
    original = split.dir / item.video
    copy = split.path("msrvtt_videos") / "video7010.mp4"
    assert copy.read_bytes() == original.read_bytes()
    assert os.stat(copy).st_ino == os.stat(original).st_ino  # a hard link on this filesystem


def test_cli_renders_and_rerenders(tmp_path, capsys):
    out = tmp_path / "w"
    argv = [
        "synth",
        "--out",
        str(out),
        "--num-videos",
        "2",
        "--num-test-videos",
        "1",
        "--frames",
        "8",
        "--size",
        "32",
    ]
    assert cli.main(argv) == 0
    assert "train: 2 videos" in capsys.readouterr().out
    first = _files(out)
    assert cli.main([*argv[:4], "1", *argv[5:]]) == 0  # rendering again replaces the splits
    assert len(list((out / "train" / "videos").iterdir())) == 1
    assert set(_files(out)) < set(first)


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--size", "63", "--size must be an even number"),
        ("--size", "16", "--size must be an even number"),
        ("--frames", "4", "--frames must be in"),
        ("--num-videos", "-1", "--num-videos must be"),
        ("--seed", "-2", "--seed must be"),
        ("--fps", "0", "--fps must be"),
    ],
)
def test_cli_names_the_bad_argument(tmp_path, capsys, flag, value, message):
    assert cli.main(["synth", "--out", str(tmp_path / "w"), flag, value]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_cli_refuses_a_directory_that_is_not_a_world(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert cli.main(["synth", "--out", str(tmp_path), "--num-videos", "1"]) == 2
    assert "holds no synthetic world" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_videollm_data_synth_command(tmp_path):
    exe = Path(sys.executable).parent / "videollm"
    r = subprocess.run(
        [
            str(exe),
            "data",
            "synth",
            "--out",
            str(tmp_path / "w"),
            "--num-videos",
            "1",
            "--frames",
            "8",
            "--counter",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "w" / WORLD_FILE).is_file()
    r = subprocess.run([str(exe), "data", "synth", "--help"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "--counter" in r.stdout and "--num-test-videos" in r.stdout
