"""The evaluation runner: tasks → items → predictions (cached, resumable) → scores → results.

Generation goes through an `Engine` (in-process transformers, or OpenAI-compatible endpoints),
`concurrency` requests in flight for endpoint engines, batches of `engine.batch_size` otherwise.
Every finished item is appended to `<output>/predictions/<task>.jsonl` at once (see
`videollm.eval.cache`), so `resume=True` after a kill re-runs nothing done and duplicates nothing.
An item whose video is missing or cannot be decoded gets an error record instead of a
prediction: counted and listed in the results, never silently skipped.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videollm.eval.cache import Prediction, PredictionCache, prediction_key
from videollm.eval.items import EvalItem
from videollm.eval.judge import Judge
from videollm.eval.loaders import load_items
from videollm.eval.tasks import TaskSpec
from videollm.inference.engine import Engine, GenerationRequest
from videollm.video.sampling import FrameSampler


@dataclass
class RunConfig:
    tasks: list[TaskSpec]
    data_root: str | Path | None
    output: Path
    model_id: str  # identity used in cache keys (checkpoint hash or served model name)
    model_name: str = ""  # what reports call it (checkpoint path, served model name)
    limit: int | None = None
    frames: int | None = 8
    fps: float | None = None
    max_frames: int | None = None
    sampler_mode: str = "exact"
    concurrency: int = 4
    resume: bool = False
    seed: int = 0
    judge: Judge | None = None
    annotations: dict[str, Path] = field(default_factory=dict)  # task → annotation file override
    progress: bool = True


def sanitize(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "__", name.strip("/")) or "model"


def sampler_for(cfg: RunConfig, item: EvalItem) -> FrameSampler:
    mode = cfg.sampler_mode
    if cfg.fps is not None:
        return FrameSampler.fps(cfg.fps, cfg.max_frames, start=item.start, end=item.end, mode=mode)
    return FrameSampler.uniform(cfg.frames or 8, start=item.start, end=item.end, mode=mode)


def settings(cfg: RunConfig, spec: TaskSpec, item: EvalItem) -> dict[str, Any]:
    return {
        "frames": None if cfg.fps is not None else (cfg.frames or 8),
        "fps": cfg.fps,
        "max_frames": cfg.max_frames,
        "mode": cfg.sampler_mode,
        "start": item.start,
        "end": item.end,
        "max_new_tokens": spec.max_new_tokens,
        "temperature": spec.temperature,
        "seed": cfg.seed,
    }


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="item", disable=not enabled, file=sys.stderr, dynamic_ncols=True)


def _failure(key: str, item: EvalItem, e: BaseException) -> Prediction:
    transient = isinstance(e, (ConnectionError, TimeoutError))
    return Prediction(key, item.task, item.id, None, f"{type(e).__name__}: {e}", retryable=transient)


def generate_task(
    engine: Engine, cfg: RunConfig, spec: TaskSpec, items: Sequence[EvalItem]
) -> list[Prediction]:
    """Predictions for all items, from the cache where possible; new ones are cached as they finish."""
    cache = PredictionCache(cfg.output / "predictions" / f"{spec.task}.jsonl", resume=cfg.resume)
    keys = [
        prediction_key(spec.task, it.id, cfg.model_id, settings(cfg, spec, it), it.prompt) for it in items
    ]
    todo: list[int] = []
    for i, (it, key) in enumerate(zip(items, keys, strict=True)):
        if cache.done(key) is not None:
            continue
        if it.video is None and it.video_error:
            cache.put(Prediction(key, spec.task, it.id, None, it.video_error, retryable=True))
        else:
            todo.append(i)

    def request(i: int) -> GenerationRequest:
        it = items[i]
        return GenerationRequest(
            prompt=it.prompt,
            video=it.video,
            sampler=sampler_for(cfg, it) if it.video is not None else None,
            max_new_tokens=spec.max_new_tokens,
            temperature=spec.temperature,
            seed=cfg.seed,
            frames_fps=it.meta.get("frames_fps"),
        )

    bar = _progress(len(items), spec.task, cfg.progress)
    bar.update(len(items) - len(todo))
    try:
        if getattr(engine, "concurrent", False):
            pool = ThreadPoolExecutor(max(1, cfg.concurrency))
            futures = {pool.submit(engine.generate, [request(i)]): i for i in todo}
            try:
                for fut in as_completed(futures):
                    i = futures[fut]
                    try:
                        cache.put(Prediction(keys[i], spec.task, items[i].id, fut.result()[0]))
                    except Exception as e:
                        cache.put(_failure(keys[i], items[i], e))
                    bar.update(1)
            finally:  # on Ctrl-C: do not start the queued requests, finish only those in flight
                pool.shutdown(wait=True, cancel_futures=True)
        else:
            size = max(1, int(getattr(engine, "batch_size", 1)))
            for start in range(0, len(todo), size):
                chunk = todo[start : start + size]
                try:
                    texts = engine.generate([request(i) for i in chunk])
                    results: list[tuple[int, Any]] = list(zip(chunk, texts, strict=True))
                except Exception:
                    results = []
                    for i in chunk:  # isolate the bad request: one at a time
                        try:
                            results.append((i, engine.generate([request(i)])[0]))
                        except Exception as e:
                            results.append((i, e))
                for i, out in results:
                    if isinstance(out, BaseException):
                        cache.put(_failure(keys[i], items[i], out))
                    else:
                        cache.put(Prediction(keys[i], spec.task, items[i].id, out))
                    bar.update(1)
    finally:
        bar.close()
    return [cache.entries[k] for k in keys]


def missing_groups(spec: TaskSpec, items: Sequence[EvalItem]) -> dict[str, list[str]]:
    """Sub-tasks the spec lists but the data lacks (e.g. 14 of MVBench's 20 in the synthetic copy)."""
    expected = spec.options.get("subtasks")
    if not expected:
        return {}
    present = {it.groups.get("subtask") for it in items}
    missing = sorted(set(expected) - present)
    return {"missing_subtasks": missing} if missing else {}


def run(engine: Engine, cfg: RunConfig, argv: list[str] | None = None) -> dict[str, Any]:
    """Evaluate every task of `cfg`; write results.json, samples, report.md and plots to `cfg.output`."""
    from videollm.eval import provenance, report
    from videollm.eval.scoring import score_task

    cfg.output.mkdir(parents=True, exist_ok=True)
    task_results: dict[str, dict[str, Any]] = {}
    for spec in cfg.tasks:
        items = load_items(spec, cfg.data_root, cfg.annotations.get(spec.task))
        n_original = len(items)
        if cfg.limit is not None:
            items = items[: cfg.limit]
        preds = generate_task(engine, cfg, spec, items)
        metrics, samples = score_task(spec, items, preds, judge=cfg.judge, seed=cfg.seed)
        metrics.update(missing_groups(spec, items))
        report.write_samples(cfg.output, spec.task, samples)
        task_results[spec.task] = {
            "spec": spec,
            "metrics": metrics,
            "n_original": n_original,
            "n": len(items),
        }
    sampling = {
        "frames": None if cfg.fps is not None else cfg.frames,
        "fps": cfg.fps,
        "max_frames": cfg.max_frames,
        "sampler": "fps" if cfg.fps is not None else "uniform",
        "mode": cfg.sampler_mode,
        "decoder_backend": getattr(engine, "backend", None),  # None: the endpoint decodes
    }
    prov = provenance.collect(
        engine.describe(),
        sampling=sampling,
        seed=cfg.seed,
        judge_info=cfg.judge.describe() if cfg.judge else None,
        argv=argv,
    )
    results = report.results_json(task_results, prov, model=cfg.model_name or cfg.model_id, limit=cfg.limit)
    report.write_all(cfg.output, results)
    return results


def rescore(
    spec: TaskSpec,
    items: Sequence[EvalItem],
    predictions: dict[str, str],
    output: Path,
    *,
    judge: Judge | None,
    seed: int = 0,
    source: str = "",
    argv: list[str] | None = None,
) -> dict[str, Any]:
    """Score predictions made elsewhere (`videollm eval score`); items without one are errors."""
    from videollm.eval import provenance, report
    from videollm.eval.scoring import score_task

    output.mkdir(parents=True, exist_ok=True)
    preds: list[Prediction | None] = []
    for it in items:
        if it.id in predictions:
            preds.append(Prediction("", spec.task, it.id, predictions[it.id]))
        else:
            preds.append(
                Prediction("", spec.task, it.id, None, "no prediction for this item in the predictions file")
            )
    metrics, samples = score_task(spec, items, preds, judge=judge, seed=seed)
    report.write_samples(output, spec.task, samples)
    metrics["n_predictions_unmatched"] = len(set(predictions) - {it.id for it in items})
    prov = provenance.collect(
        {"engine": "predictions file", "source": source},
        sampling={},
        seed=seed,
        judge_info=judge.describe() if judge else None,
        argv=argv,
    )
    results = report.results_json(
        {spec.task: {"spec": spec, "metrics": metrics, "n_original": len(items), "n": len(items)}},
        prov,
        model=source,
        limit=None,
    )
    report.write_all(output, results)
    return results
