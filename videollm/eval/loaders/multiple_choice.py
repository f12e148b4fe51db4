"""Multiple-choice benchmarks: MVBench, Video-MME (with/without subtitles), NExT-QA MC, EgoSchema.

Each reader takes the benchmark's files as released; prompts are lmms-eval 0.7.3's
(`videollm.eval.prompts`); the correct answer becomes a letter in `EvalItem.answer`.

- MVBench (OpenGVLab/MVBench): `json/<sub_task>.json`, records `{"video", "question",
  "candidates", "answer"}` (answer = the correct candidate's text) and, for the Charades/STA/TVQA
  sub-tasks, `"start"`/`"end"` in seconds. Videos as in Ask-Anything's `mvbench.ipynb` data_list
  (`video/star/Charades_v1_480/...`): there the segment bounds apply. lmms-eval's HF cache instead
  holds pre-cut segments (`star/Charades_segment/...`): found there, the bounds are not applied
  again. Sub-task folders are listed in the task YAML.
- Video-MME: the records of the HF release (`videomme/test-00000-of-00001.parquet`, or the same
  records as JSON/JSONL): `videoID`, `question_id`, `duration`, `domain`, `sub_category`,
  `task_type`, `question`, `options` ("A. ..."), `answer` (a letter); videos `data/<videoID>.mp4`,
  subtitles `subtitle/<videoID>.srt`. Also the nested per-video form
  (`[{"videoID", "duration", ..., "questions": [...]}]`).
- NExT-QA (doc-doc/NExT-QA): `test.csv`/`val.csv` with `video, question, answer (0-4), qid, type,
  a0..a4`; videos `NExTVideo/<map_vid_vidorID.json[video]>.mp4` (or flat, as lmms-eval caches).
- EgoSchema (egoschema/EgoSchema): `questions.json` (`q_uid`, `question`, `option 0..4`) and the
  public answers `subset_answers.json` (`{q_uid: index}`); only the answered subset is evaluated
  (lmms-eval's `egoschema_subset`). lmms-eval's own records (`video_idx`, `option`, `answer`)
  load too. Videos `videos/<q_uid>.mp4`.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from videollm.eval import prompts
from videollm.eval.items import LETTERS, EvalItem
from videollm.eval.loaders import VideoFinder, loader, read_json, read_json_or_jsonl, require
from videollm.eval.tasks import TaskError, TaskSpec

# --- MVBench ----------------------------------------------------------------------------------


@loader("mvbench")
def load_mvbench(spec: TaskSpec, data_dir: Path, ann: Path) -> list[EvalItem]:
    """`ann` is the `json/` folder (or one sub-task json); sub-tasks in the YAML's `options.subtasks`."""
    files = sorted(ann.glob("*.json")) if ann.is_dir() else [ann]
    if not files:
        raise TaskError(f"{ann}: no MVBench sub-task json files in it")
    subtasks: dict = spec.options.get("subtasks", {})
    post_prompt = spec.post_prompt or "Only give the best option.\n"
    items = []
    for path in files:
        sub = path.stem
        folders = list(subtasks.get(sub) or [])
        full, segments = [*folders, None, None][:2]
        full_dirs = tuple(d for d in (f"video/{full}" if full else None, full) if d) or spec.videos
        seg_dirs = tuple(d for d in (f"video/{segments}" if segments else None, segments) if d)
        full_finder = VideoFinder(spec, data_dir, full_dirs)
        seg_finder = VideoFinder(spec, data_dir, seg_dirs) if seg_dirs else None
        records = read_json(path)
        if not isinstance(records, list):
            raise TaskError(f"{path}: expected a JSON list of MVBench records")
        for i, r in enumerate(records):
            require(r, ("video", "question", "candidates", "answer"), f"{path} record {i}")
            candidates = [str(c) for c in r["candidates"]]
            if r["answer"] not in r["candidates"]:
                raise TaskError(f"{path} record {i}: answer {r['answer']!r} is not one of its candidates")
            start, end = r.get("start"), r.get("end")
            video, error = full_finder.find(r["video"])
            if video is None and seg_finder is not None:
                seg_video, _ = seg_finder.find(r["video"])
                if seg_video is not None:  # lmms-eval's pre-cut segment: bounds already applied
                    video, error, start, end = seg_video, None, None, None
            items.append(
                EvalItem(
                    task=spec.task,
                    id=f"{sub}/{i}",
                    prompt=prompts.mvbench_prompt(r["question"], candidates, post_prompt),
                    question=r["question"],
                    answer=LETTERS[r["candidates"].index(r["answer"])],
                    video=video,
                    video_name=str(r["video"]),
                    video_error=error,
                    options=tuple(candidates),
                    start=float(start) if start is not None else None,
                    end=float(end) if end is not None else None,
                    groups={"subtask": sub},
                    meta={"frames_fps": 3.0} if sub == "episodic_reasoning" else {},
                )
            )
    return items


# --- Video-MME --------------------------------------------------------------------------------


def _videomme_records(ann: Path) -> list[dict]:
    if ann.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as e:
            raise TaskError(
                f"{ann}: reading Video-MME's parquet needs pyarrow (pip install pyarrow), or give the same "
                "records as JSON/JSONL with --annotations"
            ) from e
        return pq.read_table(ann).to_pylist()
    rows = read_json_or_jsonl(ann)
    flat = []
    for r in rows:
        if "questions" in r:  # nested per-video form
            for q in r["questions"]:
                flat.append({**{k: v for k, v in r.items() if k != "questions"}, **q})
        else:
            flat.append(r)
    return flat


@loader("videomme")
def load_videomme(spec: TaskSpec, data_dir: Path, ann: Path) -> list[EvalItem]:
    with_subs = bool(spec.options.get("subtitles", False))
    frame_num = int(spec.options.get("subtitle_frames", 32))
    finder = VideoFinder(spec, data_dir)
    sub_dir = data_dir / spec.options.get("subtitle_dir", "subtitle")
    post_prompt = spec.post_prompt or "\nAnswer with the option's letter from the given choices directly."
    items = []
    for i, r in enumerate(_videomme_records(ann)):
        require(r, ("videoID", "question", "options", "answer"), f"{ann} record {i}")
        options = [str(o) for o in r["options"]]
        video, error = finder.find(r["videoID"])
        if with_subs:
            srt = sub_dir / f"{r['videoID']}.srt"
            subtitle = _subtitle_for(srt, video, frame_num) if srt.exists() else None
            prompt = prompts.videomme_subtitle_prompt(r["question"], options, subtitle)
        else:
            prompt = prompts.videomme_prompt(r["question"], options, post_prompt)
        items.append(
            EvalItem(
                task=spec.task,
                id=str(r.get("question_id", i)),
                prompt=prompt,
                question=str(r["question"]),
                answer=str(r["answer"]).strip().upper(),
                video=video,
                video_name=str(r["videoID"]),
                video_error=error,
                options=tuple(strip_letter(o) for o in options),
                groups={
                    k: str(r[f])
                    for k, f in (("duration", "duration"), ("domain", "domain"), ("task_type", "task_type"))
                    if f in r
                },
                meta={"options_display": options},
            )
        )
    return items


def _subtitle_for(srt: Path, video: Path | None, frame_num: int) -> str:
    """lmms-eval picks subtitle lines by the video's fps and frame count; without the video, all lines."""
    if video is None:  # the item is reported as a missing video and never sent
        return ""
    text = srt.read_text(encoding="utf-8", errors="replace")
    from videollm.video import probe_video

    info = probe_video(video)
    return prompts.videomme_subtitle(text, float(info.fps), int(info.num_frames), frame_num)


# --- NExT-QA multiple choice ------------------------------------------------------------------


@loader("nextqa_mc")
def load_nextqa_mc(spec: TaskSpec, data_dir: Path, ann: Path) -> list[EvalItem]:
    mapping_path = data_dir / spec.options.get("mapping", "map_vid_vidorID.json")
    mapping = read_json(mapping_path) if mapping_path.exists() else {}
    finder = VideoFinder(spec, data_dir)
    if ann.suffix == ".csv":
        with open(ann, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    else:
        rows = read_json_or_jsonl(ann)
    items = []
    for i, r in enumerate(rows):
        require(r, ("video", "question", "answer", "a0", "a1", "a2", "a3", "a4"), f"{ann} row {i}")
        options = [str(r[f"a{k}"]).strip() for k in range(5)]
        name = str(r["video"])
        video, error = finder.find(mapping.get(name, name))
        qid = r.get("qid", i)
        qtype = str(r.get("type", ""))
        items.append(
            EvalItem(
                task=spec.task,
                id=f"{name}_{qid}",
                prompt=prompts.nextqa_mc_prompt(
                    str(r["question"]), options, spec.pre_prompt, spec.post_prompt
                ),
                question=str(r["question"]),
                answer=LETTERS[int(r["answer"])],
                video=video,
                video_name=name,
                video_error=error,
                options=tuple(options),
                groups={
                    "type": qtype,
                    "category": {"C": "causal", "T": "temporal", "D": "descriptive"}.get(qtype[:1], "other"),
                }
                if qtype
                else {},
            )
        )
    return items


# --- EgoSchema --------------------------------------------------------------------------------


@loader("egoschema")
def load_egoschema(spec: TaskSpec, data_dir: Path, ann: Path) -> list[EvalItem]:
    rows = read_json_or_jsonl(ann)
    answers_path = data_dir / spec.options.get("answers", "subset_answers.json")
    answers = read_json(answers_path) if answers_path.exists() else None
    finder = VideoFinder(spec, data_dir)
    post_prompt = spec.post_prompt or "\nAnswer with the option's letter from the given choices directly."
    items = []
    for i, r in enumerate(rows):
        if "q_uid" in r:  # the official release
            uid = str(r["q_uid"])
            if answers is None:
                raise TaskError(
                    f"{ann}: the official EgoSchema questions need their public answers "
                    f"({answers_path.name}) next to them; only that subset can be scored offline"
                )
            if uid not in answers:
                continue  # not in the public-answer subset: unscorable offline (lmms-eval egoschema_subset)
            require(r, ("question", *[f"option {k}" for k in range(5)]), f"{ann} record {i}")
            options = [f"{LETTERS[k]}. {r[f'option {k}']}" for k in range(5)]
            answer, video_name = int(answers[uid]), uid
        else:  # lmms-eval's records
            require(r, ("video_idx", "question", "option", "answer"), f"{ann} record {i}")
            if r["answer"] in (None, ""):
                continue
            uid = str(r.get("question_idx", r["video_idx"]))
            options = [str(o) for o in r["option"]]
            answer, video_name = int(r["answer"]), str(r["video_idx"])
        video, error = finder.find(video_name)
        items.append(
            EvalItem(
                task=spec.task,
                id=uid,
                prompt=prompts.egoschema_prompt(str(r["question"]), options, spec.pre_prompt, post_prompt),
                question=str(r["question"]),
                answer=LETTERS[answer],
                video=video,
                video_name=video_name,
                video_error=error,
                options=tuple(strip_letter(o) for o in options),
                meta={"options_display": options},
            )
        )
    if not items:
        raise TaskError(f"{ann}: no EgoSchema question has a public answer ({answers_path.name})")
    return items


_LETTERED = re.compile(r"^\(?([A-J])[.):]\s*(.*)$", re.DOTALL)


def strip_letter(option: str) -> str:
    """ "A. a dog" → "a dog" (Video-MME/EgoSchema options carry their letter)."""
    m = _LETTERED.match(option.strip())
    return m.group(2).strip() if m else option.strip()
