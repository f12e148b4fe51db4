"""Predictions produced elsewhere, read back for re-scoring (`videollm eval score`).

Formats recognised (by content, not by name):
- Video-LLaVA `merge.jsonl` (videollava/eval/video/run_inference_video_qa.py): one
  `{"id", "question", "answer", "pred"}` per line (their scorer reads lines with `eval`, so Python
  dict reprs are accepted too);
- Video-ChatGPT's json list: `{"id", "question", "answer", "pred"}` from
  video_chatgpt/eval/run_inference_activitynet_qa.py, or `{"video_name", "Q", "A", "pred"}` as
  quantitative_evaluation/evaluate_activitynet_qa.py reads it (matched by video and question);
- lmms-eval sample logs `*_samples_<task>.jsonl`: `doc_id` + `filtered_resps` (matched by a
  `question_id` inside the logged metric dict when there is one, else by `doc_id` = position in
  the annotation file, the order lmms-eval iterates the dataset in);
- ours: `predictions/<task>.jsonl` (`id`, `prediction`) and `samples/samples_<task>.jsonl`
  (`id`, `filtered_resps`).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from pathlib import Path

from videollm.eval.items import EvalItem


class PredictionsError(ValueError):
    pass


def _records(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        data = json.loads(text)
        if not all(isinstance(r, dict) for r in data):
            raise PredictionsError(f"{path}: expected a JSON list of objects")
        return data
    if stripped.startswith("{") and "\n" not in stripped.strip():
        data = json.loads(text)
        return [data] if isinstance(data, dict) and "pred" in data else list(data.values())
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            try:
                rows.append(ast.literal_eval(line.strip()))
            except (ValueError, SyntaxError) as e:
                raise PredictionsError(f"{path}:{n}: neither JSON nor a Python dict: {line[:80]!r}") from e
    return rows


def _text(value) -> str:
    while isinstance(value, list):
        value = value[0] if value else ""
    return "" if value is None else str(value)


def read_predictions(path: str | Path, items: Sequence[EvalItem]) -> tuple[dict[str, str], str]:
    """{item id: predicted text} and the name of the format recognised."""
    path = Path(path)
    if not path.exists():
        raise PredictionsError(f"predictions file {path} does not exist")
    rows = _records(path)
    if not rows:
        raise PredictionsError(f"{path}: no predictions in it")
    first = rows[0]
    ids = {it.id for it in items}
    out: dict[str, str] = {}
    if "doc_id" in first:
        fmt = "lmms-eval samples"
        for r in rows:
            text = _text(r.get("filtered_resps", r.get("resps")))
            qid = next(
                (str(v["question_id"]) for v in r.values() if isinstance(v, dict) and "question_id" in v),
                None,
            )
            if qid is not None and qid in ids:
                out[qid] = text
            elif 0 <= int(r["doc_id"]) < len(items):
                out[items[int(r["doc_id"])].id] = text
        return out, fmt
    if "prediction" in first and "key" in first:
        return {
            str(r["id"]): r["prediction"] for r in rows if r.get("prediction") is not None
        }, "videollm predictions"
    if "filtered_resps" in first and "id" in first:
        return {
            str(r["id"]): _text(r["filtered_resps"]) for r in rows if r.get("filtered_resps") is not None
        }, "videollm samples"
    if "pred" in first and "id" in first:
        fmt = "Video-LLaVA merge.jsonl" if path.suffix == ".jsonl" else "Video-ChatGPT predictions"
        return {str(r["id"]): _text(r["pred"]) for r in rows}, fmt
    if "pred" in first and "video_name" in first:
        by_vq = {(it.video_name, it.question.strip()): it.id for it in items}
        for r in rows:
            key = (str(r["video_name"]), str(r.get("Q", r.get("question", ""))).strip())
            if key in by_vq:
                out[by_vq[key]] = _text(r["pred"])
        return out, "Video-ChatGPT predictions (video_name, Q, A, pred)"
    raise PredictionsError(
        f"{path}: unrecognised predictions format (first record keys {sorted(first)}); expected Video-LLaVA "
        "merge.jsonl, Video-ChatGPT json, lmms-eval *_samples_*.jsonl or videollm predictions"
    )
