"""Open-ended video QA: MSVD-QA, MSRVTT-QA, TGIF-QA FrameQA, ActivityNet-QA.

One loader, `video_qa`, reads every release of these four, picking the reader by the file found:

- `*_qa.json` — MSVD-QA / MSRVTT-QA as released by Xu et al. 2017: a list of
  `{"answer", "id", "question", "video_id"}` (+ `category_id` in MSRVTT-QA). MSVD's integer
  `video_id` N is the clip `vidN` of `youtube_mapping.txt` (lines `<youtube clip> vidN`), whose
  file is `YouTubeClips/<youtube clip>.avi`; MSRVTT's is `video<N>.mp4`.
- `*_q.json` + `*_a.json` — ActivityNet-QA as released (MILVLG/activitynet-qa:
  `{"video_name", "question", "question_id"}` / `{"answer", "type", "question_id"}`), and the
  `test_q.json`/`test_a.json` re-packaging of all four that Video-ChatGPT and Video-LLaVA
  distribute (`run_inference_video_qa.py`: answers paired with questions by position).
- `*_frameqa_question.csv` — TGIF-QA FrameQA as released (YunseokJANG/tgif-qa): tab-separated
  with a header (`gif_name`, `question`, `answer`, `type`, ...), type 0-3 = object/number/color/
  location; videos `gifs/<gif_name>.gif` or the mp4 conversions Video-LLaVA uses.

Question-type breakdown (`groups["qtype"]`): the dataset's own type where it has one, else the
question's first word (what/who/how/when/where), as the MSVD-QA/MSRVTT-QA papers report.
"""

from __future__ import annotations

import csv
from pathlib import Path

from videollm.eval.items import EvalItem
from videollm.eval.loaders import (
    VideoFinder,
    apply_prompt,
    loader,
    read_json,
    require,
)
from videollm.eval.tasks import TaskError, TaskSpec

WH_WORDS = ("what", "who", "how", "when", "where", "why", "which")


def first_word_type(question: str) -> str:
    word = question.strip().split(" ", 1)[0].lower() if question.strip() else ""
    return word if word in WH_WORDS else "other"


def _qtype(spec: TaskSpec, question: str, raw_type) -> str:
    names = spec.options.get("type_names")
    if raw_type is not None and names:
        return (
            str(names.get(int(raw_type), raw_type)) if isinstance(names, dict) else str(names[int(raw_type)])
        )
    if raw_type is not None and not spec.options.get("first_word_types", False):
        return str(raw_type)
    return first_word_type(question)


def _item(
    spec: TaskSpec, finder: VideoFinder, *, id, question, answer, video_name, raw_type=None, prefixes=("",)
) -> EvalItem:
    path, error = finder.find(video_name, prefixes)
    q = str(question)
    return EvalItem(
        task=spec.task,
        id=str(id),
        prompt=apply_prompt(spec, question=q, question_cap=q.capitalize() + "?"),
        question=q,
        answer=str(answer),
        video=path,
        video_name=str(video_name),
        video_error=error,
        groups={"qtype": _qtype(spec, q, raw_type)},
    )


def youtube_mapping(path: Path) -> dict[str, str]:
    """MSVD's youtube_mapping.txt: `<youtube clip name> vid<N>` per line → {"vidN": clip}.

    Public because MSVD's QA loader (here) and its caption loader (`captions`) both name clips by it.
    """
    mapping = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            parts = line.split()
            if len(parts) != 2:
                raise TaskError(f"{path}:{n}: expected '<clip name> vid<N>', got {line!r}")
            mapping[parts[1]] = parts[0]
    return mapping


def _read_qa_json(spec: TaskSpec, data_dir: Path, ann: Path) -> list[EvalItem]:
    rows = read_json(ann)
    if not isinstance(rows, list):
        raise TaskError(f"{ann}: expected a JSON list of QA records")
    finder = VideoFinder(spec, data_dir)
    template = spec.options.get("video_name", "{video_id}")
    mapping = {}
    if spec.options.get("mapping"):
        map_path = data_dir / spec.options["mapping"]
        if map_path.exists():
            mapping = youtube_mapping(map_path)
    items = []
    for i, r in enumerate(rows):
        require(r, ("question", "answer", "video_id"), f"{ann} record {i}")
        name = template.format(video_id=r["video_id"])
        name = mapping.get(name, name)
        items.append(
            _item(
                spec,
                finder,
                id=r.get("id", i),
                question=r["question"],
                answer=r["answer"],
                video_name=name,
                raw_type=r.get("category_id") if "type_names" in spec.options else None,
            )
        )
    return items


def _read_q_a_json(spec: TaskSpec, data_dir: Path, ann: Path) -> list[EvalItem]:
    ans_path = ann.with_name(ann.name.replace("_q.json", "_a.json"))
    if not ans_path.exists():
        raise TaskError(f"{ann}: its answers file {ans_path.name} is missing next to it")
    questions, answers = read_json(ann), read_json(ans_path)
    if not isinstance(questions, list) or not isinstance(answers, list):
        raise TaskError(f"{ann} / {ans_path}: expected JSON lists")
    if len(questions) != len(answers):
        raise TaskError(
            f"{ann} has {len(questions)} questions but {ans_path.name} has {len(answers)} answers"
        )
    by_id = {str(a["question_id"]): a for a in answers if isinstance(a, dict) and "question_id" in a}
    finder = VideoFinder(spec, data_dir)
    prefixes = tuple(spec.options.get("video_prefixes", ("",)))
    items = []
    for i, q in enumerate(questions):
        require(q, ("video_name", "question"), f"{ann} record {i}")
        qid = str(q.get("question_id", i))
        # ActivityNet-QA pairs by question_id; Video-ChatGPT/Video-LLaVA by position (same order).
        a = by_id.get(qid, answers[i])
        require(a, ("answer",), f"{ans_path} record for question {qid}")
        items.append(
            _item(
                spec,
                finder,
                id=qid,
                question=q["question"],
                answer=a["answer"],
                video_name=q["video_name"],
                raw_type=a.get("type"),
                prefixes=prefixes,
            )
        )
    return items


def _read_tgif_frameqa(spec: TaskSpec, data_dir: Path, ann: Path) -> list[EvalItem]:
    finder = VideoFinder(spec, data_dir)
    items = []
    with open(ann, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        for i, r in enumerate(reader):
            require(r, ("gif_name", "question", "answer"), f"{ann} row {i + 2}")
            items.append(
                _item(
                    spec,
                    finder,
                    id=i,
                    question=r["question"],
                    answer=r["answer"],
                    video_name=r["gif_name"],
                    raw_type=r.get("type") or None,
                )
            )
    return items


@loader("video_qa")
def load_video_qa(spec: TaskSpec, data_dir: Path, ann: Path) -> list[EvalItem]:
    name = ann.name.lower()
    if name.endswith((".csv", ".tsv")):
        return _read_tgif_frameqa(spec, data_dir, ann)
    if name.endswith("_q.json"):
        return _read_q_a_json(spec, data_dir, ann)
    if name.endswith(".json"):
        return _read_qa_json(spec, data_dir, ann)
    raise TaskError(f"{ann}: not a known open-ended QA file (expected *_qa.json, *_q.json or *.csv)")
