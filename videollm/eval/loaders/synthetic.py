"""The synthetic world's own sets (`videollm data synth`): `qa.jsonl` and `captions.jsonl` of a split.

`qa.jsonl` has one record per question (`id`, `type` static/temporal, `qtype`, `question`, short
`answer`, `candidates`, `answer_index`, `video` relative to the split folder); `captions.jsonl`
one per video (`video_id`, `video`, `caption`, `paraphrases`). The prompts are the forms the
synthetic training data asks them in (videollm/data/formats.py), so a model trained there is
evaluated on the same wording.
"""

from __future__ import annotations

from pathlib import Path

from videollm.eval import prompts
from videollm.eval.items import LETTERS, EvalItem
from videollm.eval.loaders import VideoFinder, apply_prompt, loader, read_json_or_jsonl, require
from videollm.eval.tasks import TaskError, TaskSpec


@loader("synthetic_qa")
def load_synthetic_qa(spec: TaskSpec, data_dir: Path, ann: Path) -> list[EvalItem]:
    """Open-ended (`kind: open_ended`) or multiple choice (`kind: multiple_choice`) from qa.jsonl."""
    finder = VideoFinder(spec, data_dir)
    items = []
    for i, r in enumerate(read_json_or_jsonl(ann)):
        require(r, ("id", "type", "qtype", "question", "answer", "video"), f"{ann} line {i + 1}")
        video, error = finder.find(r["video"])
        groups = {"type": str(r["type"]), "qtype": str(r["qtype"])}
        common = dict(
            task=spec.task,
            id=str(r["id"]),
            question=r["question"],
            video=video,
            video_name=r["video"],
            video_error=error,
            groups=groups,
        )
        if spec.kind == "multiple_choice":
            require(r, ("candidates", "answer_index"), f"{ann} line {i + 1}")
            candidates = [str(c) for c in r["candidates"]]
            if not 0 <= int(r["answer_index"]) < len(candidates):
                raise TaskError(f"{ann} line {i + 1}: answer_index {r['answer_index']} out of range")
            post = spec.post_prompt or "Only give the best option."
            items.append(
                EvalItem(
                    **common,
                    prompt=prompts.mvbench_prompt(r["question"], candidates, post),
                    answer=LETTERS[int(r["answer_index"])],
                    options=tuple(candidates),
                )
            )
        else:
            items.append(
                EvalItem(
                    **common,
                    prompt=apply_prompt(spec, question=r["question"]),
                    answer=str(r["answer"]),
                    meta={"answer_sentence": r.get("answer_sentence", "")},
                )
            )
    return items


@loader("synthetic_caption")
def load_synthetic_caption(spec: TaskSpec, data_dir: Path, ann: Path) -> list[EvalItem]:
    finder = VideoFinder(spec, data_dir)
    items = []
    for i, r in enumerate(read_json_or_jsonl(ann)):
        require(r, ("video_id", "video", "caption"), f"{ann} line {i + 1}")
        video, error = finder.find(r["video"])
        refs = (str(r["caption"]), *[str(p) for p in r.get("paraphrases", [])])
        items.append(
            EvalItem(
                task=spec.task,
                id=str(r["video_id"]),
                prompt=apply_prompt(spec),
                video=video,
                video_name=r["video"],
                video_error=error,
                references=refs,
            )
        )
    return items
