"""Score one task: items + predictions → metrics (overall and per group) and per-item sample logs.

What counts, for every kind:
- `n` items; `n_errors` items without a prediction (missing/undecodable video, endpoint refused),
  listed in the samples with their reason and never silently dropped;
- multiple choice: accuracy by the task's lmms-eval rule (`videollm.eval.choices`), plus
  `n_unextractable` (replies holding no option letter) and `accuracy_all` (every item in the
  denominator, errors counted wrong; equals `accuracy` except for MVBench, whose lmms-eval
  aggregate leaves empty replies out);
- open-ended: exact match and token F1 (always), and the Video-ChatGPT judge's accuracy / score /
  failures when a judge is given (`judge: null` in the results otherwise);
- captions: pycocoevalcap BLEU-1..4, METEOR, ROUGE-L, CIDEr; missing predictions scored empty.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from videollm.eval import captions, choices, textmatch
from videollm.eval.cache import Prediction
from videollm.eval.items import EvalItem
from videollm.eval.judge import Judge, aggregate
from videollm.eval.tasks import TaskSpec


def _pct(num: float, den: float) -> float | None:
    return 100.0 * num / den if den else None


def _groups(items: Sequence[EvalItem], spec: TaskSpec) -> dict[str, dict[str, list[int]]]:
    """{group key: {group value: [item indices]}} for the keys the spec reports by."""
    keys = spec.group_by or tuple(sorted({k for it in items for k in it.groups}))
    out: dict[str, dict[str, list[int]]] = {}
    for key in keys:
        by: dict[str, list[int]] = defaultdict(list)
        for i, it in enumerate(items):
            if key in it.groups:
                by[it.groups[key]].append(i)
        if by:
            out[key] = dict(sorted(by.items()))
    return out


def _base_sample(i: int, item: EvalItem, pred: Prediction | None) -> dict[str, Any]:
    return {
        "doc_id": i,
        "id": item.id,
        "input": item.prompt,
        "video": str(item.video) if item.video else item.video_name,
        "target": item.answer if not item.references else list(item.references),
        "filtered_resps": pred.prediction if pred else None,
        "error": (pred.error if pred else None) or item.video_error,
        **({"groups": item.groups} if item.groups else {}),
    }


def score_multiple_choice(
    spec: TaskSpec, items: Sequence[EvalItem], preds: Sequence[Prediction | None], seed: int
):
    rule = spec.extraction or "mvbench"
    samples, correct, answered, extracted = [], [], [], []
    for i, (item, p) in enumerate(zip(items, preds, strict=True)):
        s = _base_sample(i, item, p)
        text = p.prediction if p is not None and p.ok else None
        if text is None:
            c = choices.Choice("", False)
        else:
            c = choices.extract_choice(rule, text, item.options, seed_key=f"{seed}:{item.id}")
        ok = bool(c.letter) and c.letter == item.answer
        correct.append(ok)
        answered.append(text is not None and (rule != "mvbench" or text != ""))
        extracted.append(text is not None and c.extracted)
        s.update({"pred_answer": c.letter, "extracted": c.extracted, "correct": ok})
        samples.append(s)

    def acc(idx: Sequence[int]) -> dict[str, Any]:
        n_ok = sum(correct[i] for i in idx)
        den = sum(answered[i] for i in idx) if rule == "mvbench" else len(idx)
        return {"accuracy": _pct(n_ok, den), "n": len(idx)}

    all_idx = list(range(len(items)))
    metrics: dict[str, Any] = {
        **acc(all_idx),
        "accuracy_all": _pct(sum(correct), len(items)),
        "n_errors": sum(p is None or not p.ok for p in preds),
        "n_unextractable": sum(
            p is not None and p.ok and not e for p, e in zip(preds, extracted, strict=True)
        ),
        "extraction_rule": rule,
    }
    breakdown = {key: {v: acc(idx) for v, idx in by.items()} for key, by in _groups(items, spec).items()}
    if "subtask" in breakdown:  # MVBench papers average the 20 sub-task accuracies
        vals = [v["accuracy"] for v in breakdown["subtask"].values() if v["accuracy"] is not None]
        metrics["accuracy_subtask_mean"] = sum(vals) / len(vals) if vals else None
    metrics["by"] = breakdown
    return metrics, samples


def score_open_ended(
    spec: TaskSpec,
    items: Sequence[EvalItem],
    preds: Sequence[Prediction | None],
    judge: Judge | None,
    progress: Callable[[], None] | None = None,
):
    samples, em, f1 = [], [], []
    for i, (item, p) in enumerate(zip(items, preds, strict=True)):
        s = _base_sample(i, item, p)
        text = p.prediction if p is not None and p.ok else None
        e = textmatch.exact_match(text, item.answer) if text is not None else 0.0
        f = textmatch.token_f1(text, item.answer) if text is not None else 0.0
        em.append(e)
        f1.append(f)
        s.update({"exact_match": e, "token_f1": f})
        samples.append(s)
    judgements: list = [None] * len(items)
    if judge is not None:
        todo = [i for i, p in enumerate(preds) if p is not None and p.ok]
        triples = [(items[i].question, items[i].answer, preds[i].prediction) for i in todo]
        for i, j in zip(todo, judge.judge_many(triples, progress), strict=True):
            judgements[i] = j
            samples[i]["judge"] = {
                "pred": j.verdict.pred if j.verdict else None,
                "score": j.verdict.score if j.verdict else None,
                "reply": j.reply,
                "error": j.error,
            }

    def summary(idx: Sequence[int]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "exact_match": _pct(sum(em[i] for i in idx), len(idx)),
            "token_f1": _pct(sum(f1[i] for i in idx), len(idx)),
            "n": len(idx),
        }
        if judge is not None:
            out.update(aggregate([judgements[i] for i in idx]))
        return out

    metrics = summary(range(len(items)))
    metrics["n_errors"] = sum(p is None or not p.ok for p in preds)
    metrics["judge"] = judge.describe() if judge is not None else None
    if judge is None:
        metrics["judge_note"] = (
            "judge score absent: no --judge-endpoint given (exact match and token F1 only)"
        )
    metrics["by"] = {
        key: {v: summary(idx) for v, idx in by.items()} for key, by in _groups(items, spec).items()
    }
    return metrics, samples


def score_caption(spec: TaskSpec, items: Sequence[EvalItem], preds: Sequence[Prediction | None]):
    refs = {it.id: list(it.references) for it in items}
    hyps = {
        it.id: (p.prediction if p is not None and p.ok else "") for it, p in zip(items, preds, strict=True)
    }
    metrics: dict[str, Any] = dict(captions.caption_scores(refs, hyps))
    metrics["n"] = len(items)
    metrics["n_errors"] = sum(p is None or not p.ok for p in preds)
    metrics["n_scored_empty"] = sum(not h for h in hyps.values())
    metrics["not_computed"] = captions.NOT_COMPUTED
    samples = [_base_sample(i, it, p) for i, (it, p) in enumerate(zip(items, preds, strict=True))]
    return metrics, samples


def score_task(
    spec: TaskSpec,
    items: Sequence[EvalItem],
    preds: Sequence[Prediction | None],
    *,
    judge: Judge | None = None,
    seed: int = 0,
    progress: Callable[[], None] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`preds[i]` is the prediction for `items[i]` (None: never generated)."""
    if spec.kind == "multiple_choice":
        return score_multiple_choice(spec, items, preds, seed)
    if spec.kind == "open_ended":
        return score_open_ended(spec, items, preds, judge, progress)
    return score_caption(spec, items, preds)
