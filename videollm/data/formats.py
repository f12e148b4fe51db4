"""Writers of the synthetic world's annotations: our training format, our manifests, and the official
file formats of the benchmarks that `videollm eval` reads, so its loaders run on synthetic data
unchanged.

Formats followed (key names, value types, file and video naming):

- LLaVA conversations (DESIGN.md "Data"): `{"id", "video" | "image", "conversations": [{"from":
  "human", "value": "<video>\\n..."}, {"from": "gpt", "value": ...}]}`, media paths relative to the
  split folder, which holds the files (the default media root of a LLaVA data file is its folder).
- MSVD-QA, original release (github.com/xudejing/video-question-answering): `{split}_qa.json`, a list
  of `{"answer": str, "id": int, "question": str, "video_id": int}`; `youtube_mapping.txt` lines
  `<clip> vid<video_id>`; clips in `YouTubeClips/<clip>.<ext>`, named `<youtube id>_<start>_<end>`.
  (Ours are .mp4, not the release's .avi.)
- MSVD-QA as re-packaged by Video-ChatGPT and Video-LLaVA (mbzuai-oryx/Video-ChatGPT
  quantitative_evaluation; PKU-YuanGroup/Video-LLaVA videollava/eval/video/run_inference_video_qa.py):
  `GPT_Zero_Shot_QA/MSVD_Zero_Shot_QA/{split}_q.json` = `[{"video_name", "question", "question_id"}]`
  and `{split}_a.json` = `[{"answer", "question_id"}]`, aligned by index; videos in `videos/`, found
  by trying the extensions .mp4/.avi/.mov/.mkv after `video_name`.
- MVBench (huggingface.co/datasets/OpenGVLab/MVBench, read by OpenGVLab/Ask-Anything
  video_chat2/mvbench.ipynb and lmms-eval lmms_eval/tasks/mvbench/utils.py): `json/<sub_task>.json`,
  a list of `{"video", "question", "candidates", "answer"}` (+ `"start"`, `"end"` in seconds for the
  sub-tasks with segment bounds, e.g. action_sequence); videos under `video/<folder>/` with the folder
  of each sub-task as in lmms-eval's DATA_LIST (and Ask-Anything's data_list, where it differs).
- MSR-VTT captions (the MSR-VTT 10K release's readme): `test_videodatainfo.json` (train split:
  `train_val_videodatainfo.json`) = `{"info", "videos": [{"id", "video_id", "category", "url",
  "start time", "end time", "split"}], "sentences": [{"sen_id", "video_id", "caption"}]}`; videos
  `TestVideo/video<N>.mp4` (`TrainValVideo/` for train), test ids from video7010 as in the release.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import string
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from videollm.data.questions import QA

if TYPE_CHECKING:
    from videollm.data.synthetic import VideoItem

SHORT_ANSWER_PROMPT = "Answer the question using a single word or phrase."  # LLaVA-1.5's VQA suffix
VIDEO_CAPTION_PROMPTS = (
    "Describe the video briefly.",
    "What happens in this video?",
    "Give a short description of the video.",
    "Summarize what you see in the video.",
    "Describe what the shapes do in this video.",
    "Write a one-line caption for this video.",
)
IMAGE_CAPTION_PROMPTS = (
    "Describe the image briefly.",
    "What is in this image?",
    "Give a short description of the picture.",
    "Write a caption for this image.",
    "What do you see in the image?",
    "Describe the shapes in this image.",
)

# Temporal question types → MVBench sub-task whose kind of question they are, and its video folder
# (lmms-eval's DATA_LIST). MVBench has only temporal sub-tasks, so static questions are not exported.
MVBENCH_TASKS: dict[str, str] = {
    "direction": "moving_direction",
    "speed": "moving_attribute",
    "order": "action_sequence",
    "disappear": "object_existence",
    "color_change": "state_change",
    "changed_object": "state_change",
    "count_change": "moving_count",
}
# Video folders per sub-task: lmms-eval's DATA_LIST first; the bounded sub-task is also linked where
# Ask-Anything's mvbench.ipynb data_list looks (the uncut videos to which start/end apply).
MVBENCH_FOLDERS: dict[str, tuple[str, ...]] = {
    "moving_direction": ("clevrer/video_validation",),
    "moving_attribute": ("clevrer/video_validation",),
    "action_sequence": ("star/Charades_segment", "star/Charades_v1_480"),
    "object_existence": ("clevrer/video_validation",),
    "state_change": ("perception/videos",),
    "moving_count": ("clevrer/video_validation",),
}
MVBENCH_BOUNDED = {"action_sequence"}  # sub-tasks whose items carry start/end (as STAR's do)
MSRVTT_TEST_FIRST_ID = 7010  # the release's test split is video7010 ... video9999
MSRVTT_CATEGORY = 8  # "animation" in the release's category.txt


def mc_prompt(question: str, candidates: Sequence[str]) -> str:
    """Multiple-choice prompt as lmms-eval's mvbench_doc_to_text builds it (post_prompt included)."""
    options = "".join(f"({string.ascii_uppercase[i]}) {c}\n" for i, c in enumerate(candidates))
    return f"Question:{question}\nOption:\n{options}Only give the best option."


MC_REPLIES = ("letter_first", "answer_first")  # "(B) up" (as the world's data writes it) or "up (B)"


def mc_reply(letter: str, answer: str, order: str = "letter_first") -> str:
    """A multiple-choice reply naming option `letter` whose text is `answer`. Letter first is how MVBench-style
    data answers; answer first, a small LM copies the letter in front of the option it just wrote instead of
    finding the option before writing it (`videollm.bench.study_mc`). MVBench's extraction reads either."""
    if order not in MC_REPLIES:
        raise ValueError(f"mc_reply must be one of {', '.join(MC_REPLIES)}, got {order!r}")
    return f"{answer} ({letter})" if order == "answer_first" else f"({letter}) {answer}"


def mc_answer(qa: QA, order: str = "letter_first") -> str:
    """The assistant's multiple-choice reply: the option letter in parentheses and its text, in `order`."""
    return mc_reply(string.ascii_uppercase[qa.answer_index], qa.answer, order)


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")  # dumps: the C encoder


def _write_jsonl(path: Path, records: Iterable[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def link(src: Path, dst: Path) -> None:
    """Put `src` at `dst` without copying bytes where the filesystem allows (a hard link)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _turns(media: str, prompt: str, reply: str) -> list[dict]:
    return [{"from": "human", "value": f"<{media}>\n{prompt}"}, {"from": "gpt", "value": reply}]


def _qa_samples(sample_id: str, media: str, path: str, qa: QA) -> list[dict]:
    """One question in the three forms a model is later asked it: sentence, short answer, options."""
    forms = {
        "open": (qa.question, qa.sentence),
        "short": (f"{qa.question}\n{SHORT_ANSWER_PROMPT}", qa.answer),
        "mc": (mc_prompt(qa.question, qa.candidates), mc_answer(qa)),
    }
    return [
        {
            "id": f"{sample_id}_{form}",
            media: path,
            "conversations": _turns(media, prompt, reply),
            "type": qa.type,
            "qtype": qa.qtype,
            "form": form,
        }
        for form, (prompt, reply) in forms.items()
    ]


def _caption_samples(
    sample_id: str, media: str, path: str, captions: Sequence[str], start: int
) -> list[dict]:
    """One align sample per caption variant, the media's caption prompts taken in turn from `start`."""
    prompts = VIDEO_CAPTION_PROMPTS if media == "video" else IMAGE_CAPTION_PROMPTS
    return [
        {
            "id": f"{sample_id}{k}",
            media: path,
            "conversations": _turns(media, prompts[(start + k) % len(prompts)], caption),
        }
        for k, caption in enumerate(captions)
    ]


def write_llava(out: Path, items: Sequence[VideoItem]) -> dict[str, str]:
    """`align.json` (captions) and `instruct.json` (QA), video and image samples mixed, next to the
    media they point to (the split folder is their media root).

    Every caption variant is one align sample; every question is three instruct samples (forms
    `open`, `short`, `mc`, in the sample's `form` key, next to `type` and `qtype`) so a recipe can
    pick what it trains on.
    """
    align, instruct = [], []
    for item in items:
        align += _caption_samples(f"{item.video_id}_cap", "video", item.video, item.captions, item.index)
        align += _caption_samples(
            f"{item.video_id}_img_cap", "image", item.image, item.image_captions, item.index
        )
        for k, qa in enumerate(item.questions):
            instruct += _qa_samples(f"{item.video_id}_q{k:02d}", "video", item.video, qa)
        for k, qa in enumerate(item.image_questions):
            instruct += _qa_samples(f"{item.video_id}_img_q{k:02d}", "image", item.image, qa)
    _write_json(out / "align.json", align)
    _write_json(out / "instruct.json", instruct)
    return {"llava_align": "align.json", "llava_instruct": "instruct.json"}


def _qa_record(qa: QA, qid: str) -> dict:
    return {
        "id": qid,
        "type": qa.type,
        "qtype": qa.qtype,
        "question": qa.question,
        "answer": qa.answer,
        "answer_sentence": qa.sentence,
        "candidates": list(qa.candidates),
        "answer_index": qa.answer_index,
        "objects": list(qa.objects),
    }


def write_manifests(out: Path, items: Sequence[VideoItem]) -> dict[str, str]:
    """Our own plain manifests, read by the synthetic_qa / synthetic_mc / synthetic_caption tasks.

    - `qa.jsonl`: one record per video question (`type` static/temporal, `qtype`, short answer,
      sentence answer, candidates + answer_index);
    - `image_qa.jsonl`: the same for the single frames;
    - `captions.jsonl`: one record per video, reference caption + paraphrases;
    - `scenes.jsonl`: the scene and its per-frame object states, from which every answer derives.
    """
    clip = [
        {
            "video_id": i.video_id,
            "video": i.video,
            "num_frames": i.num_frames,
            "fps": i.fps,
            "duration": i.duration,
        }
        for i in items
    ]
    _write_jsonl(
        out / "qa.jsonl",
        (
            {**_qa_record(qa, f"{i.video_id}_q{k:02d}"), **c}
            for i, c in zip(items, clip, strict=True)
            for k, qa in enumerate(i.questions)
        ),
    )
    _write_jsonl(
        out / "image_qa.jsonl",
        (
            {
                **_qa_record(qa, f"{i.video_id}_img_q{k:02d}"),
                "image": i.image,
                "video_id": i.video_id,
                "frame": i.image_frame,
            }
            for i in items
            for k, qa in enumerate(i.image_questions)
        ),
    )
    _write_jsonl(
        out / "captions.jsonl",
        (
            {**c, "caption": i.captions[0], "paraphrases": list(i.captions[1:])}
            for i, c in zip(items, clip, strict=True)
        ),
    )
    _write_jsonl(
        out / "scenes.jsonl",
        (
            {
                **c,
                "size": i.size,
                "scene": i.scene.to_dict(),
                "states": [
                    [
                        {
                            "id": o.id,
                            "shape": o.shape,
                            "color": o.color,
                            "size": o.size,
                            "x": round(o.x, 4),
                            "y": round(o.y, 4),
                        }
                        for o in s
                    ]
                    for s in i.states
                ],
            }
            for i, c in zip(items, clip, strict=True)
        ),
    )
    return {
        "qa": "qa.jsonl",
        "image_qa": "image_qa.jsonl",
        "captions": "captions.jsonl",
        "scenes": "scenes.jsonl",
    }


def msvd_clip_name(item: VideoItem) -> str:
    """MSVD's clip naming `<youtube id>_<start>_<end>` (whole seconds) with our video id as the id."""
    return f"{item.video_id}_0_{math.ceil(item.duration)}"


def write_msvd_qa(out: Path, items: Sequence[VideoItem], split: str) -> dict[str, str]:
    """MSVD-QA in its original release format, and as Video-ChatGPT / Video-LLaVA re-package it."""
    root = out / "msvd_qa"
    mapping, qa_list = [], []
    vcg = out / "GPT_Zero_Shot_QA" / "MSVD_Zero_Shot_QA"
    questions, answers = [], []
    for n, item in enumerate(items, start=1):
        clip = msvd_clip_name(item)
        mapping.append(f"{clip} vid{n}\n")
        link(out / item.video, root / "YouTubeClips" / f"{clip}.mp4")
        link(out / item.video, vcg / "videos" / f"{clip}.mp4")
        for k, qa in enumerate(item.questions):
            qa_list.append({"answer": qa.answer, "id": len(qa_list), "question": qa.question, "video_id": n})
            qid = f"v_{clip}_{k}"
            questions.append({"video_name": clip, "question": qa.question, "question_id": qid})
            answers.append({"answer": qa.answer, "question_id": qid})
    root.mkdir(parents=True, exist_ok=True)
    (root / "youtube_mapping.txt").write_text("".join(mapping), encoding="utf-8")
    _write_json(root / f"{split}_qa.json", qa_list)
    _write_json(vcg / f"{split}_q.json", questions)
    _write_json(vcg / f"{split}_a.json", answers)
    return {
        "msvd_qa": f"msvd_qa/{split}_qa.json",
        "msvd_qa_mapping": "msvd_qa/youtube_mapping.txt",
        "msvd_qa_videos": "msvd_qa/YouTubeClips",
        "video_chatgpt_msvd_q": f"GPT_Zero_Shot_QA/MSVD_Zero_Shot_QA/{split}_q.json",
        "video_chatgpt_msvd_a": f"GPT_Zero_Shot_QA/MSVD_Zero_Shot_QA/{split}_a.json",
        "video_chatgpt_msvd_videos": "GPT_Zero_Shot_QA/MSVD_Zero_Shot_QA/videos",
    }


def write_mvbench(out: Path, items: Sequence[VideoItem]) -> dict[str, str]:
    """The temporal questions as MVBench multiple-choice sub-tasks (one json per sub-task)."""
    root = out / "mvbench"
    tasks: dict[str, list[dict]] = {}
    for item in items:
        for qa in item.questions:
            task = MVBENCH_TASKS.get(qa.qtype)
            if task is None:
                continue
            entry: dict[str, Any] = {
                "video": f"{item.video_id}.mp4",
                "question": qa.question,
                "candidates": list(qa.candidates),
                "answer": qa.answer,
            }
            if task in MVBENCH_BOUNDED:
                entry["start"], entry["end"] = 0.0, round(item.duration, 3)
            tasks.setdefault(task, []).append(entry)
            for folder in MVBENCH_FOLDERS[task]:
                link(out / item.video, root / "video" / folder / f"{item.video_id}.mp4")
    files = {}
    for task in sorted(tasks):
        _write_json(root / "json" / f"{task}.json", tasks[task])
        files[f"mvbench_{task}"] = f"mvbench/json/{task}.json"
    files["mvbench_videos"] = "mvbench/video"
    return files


def write_msrvtt(out: Path, items: Sequence[VideoItem], split: str, seed: int) -> dict[str, str]:
    """Captions as MSR-VTT's `*_videodatainfo.json`: the reference and its paraphrases per video."""
    root = out / "msrvtt"
    test = split == "test"
    first = MSRVTT_TEST_FIRST_ID if test else 0
    folder = "TestVideo" if test else "TrainValVideo"
    videos, sentences = [], []
    for item in items:
        n = first + item.index
        vid = f"video{n}"
        link(out / item.video, root / folder / f"{vid}.mp4")
        videos.append(
            {
                "id": n,
                "video_id": vid,
                "category": MSRVTT_CATEGORY,
                "url": f"synthetic:{item.video_id}",
                "start time": 0.0,
                "end time": round(item.duration, 3),
                "split": "test" if test else "train",
            }
        )
        for caption in item.captions:
            sentences.append({"sen_id": len(sentences), "video_id": vid, "caption": caption})
    info = {
        "year": "",
        "version": "videollm-synthetic-1",
        "description": f"videollm synthetic world, seed {seed}, split {split}, in the MSR-VTT 10K format",
        "contributor": "videollm",
        "data_created": "",
    }
    name = "test_videodatainfo.json" if test else "train_val_videodatainfo.json"
    _write_json(root / name, {"info": info, "videos": videos, "sentences": sentences})
    return {"msrvtt_caption": f"msrvtt/{name}", "msrvtt_videos": f"msrvtt/{folder}"}
