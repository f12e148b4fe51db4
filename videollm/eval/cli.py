"""`videollm eval`: run benchmarks on a model or endpoint, re-score predictions, list tasks.

videollm eval --tasks T[,T...] [--model PATH | --endpoint URL[,URL...] --served-model NAME]
              [--data-root DIR] [--limit N] [--frames N | --fps F] [--concurrency K]
              [--judge-endpoint URL --judge-model NAME] [--output DIR] [--resume]
videollm eval --list
videollm eval score --task T --annotations PATH --predictions FILE [--judge-endpoint URL ...]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from videollm.eval.tasks import TaskError, all_specs, all_suites, resolve_tasks
from videollm.video.decode import BACKENDS, DEFAULT_BACKEND


def _add_judge_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("judge (open-ended QA; Video-ChatGPT's GPT-assisted protocol)")
    g.add_argument(
        "--judge-endpoint", help="OpenAI-compatible base URL of the judge, e.g. http://127.0.0.1:8001/v1"
    )
    g.add_argument(
        "--judge-model", help="judge model name as the endpoint serves it (recorded in the results)"
    )
    g.add_argument("--judge-api-key", default=None, help="API key for the judge (default: $OPENAI_API_KEY)")
    g.add_argument("--judge-concurrency", type=int, default=4, help="judge requests in flight (default 4)")
    g.add_argument(
        "--judge-retries", type=int, default=5, help="tries per judge request before it counts as a failure"
    )


def _judge(args: argparse.Namespace, output: Path):
    if not args.judge_endpoint:
        if args.judge_model:
            raise TaskError("--judge-model needs --judge-endpoint (the server that serves it)")
        return None
    if not args.judge_model:
        raise TaskError(
            "--judge-endpoint needs --judge-model NAME (the judge model, recorded with the results)"
        )
    from videollm.eval.judge import Judge

    return Judge(
        args.judge_endpoint,
        args.judge_model,
        api_key=args.judge_api_key or os.environ.get("OPENAI_API_KEY"),
        cache=output / "judge_cache.jsonl",
        retries=args.judge_retries,
        concurrency=args.judge_concurrency,
    )


def run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="videollm eval",
        description="Score a video model on video-QA and captioning benchmarks, as their papers score them. "
        "`videollm eval score --help` re-scores predictions made elsewhere.",
    )
    p.add_argument("--list", action="store_true", help="list the tasks and suites, then exit")
    p.add_argument("--tasks", help="comma-separated task or suite names, or task YAML paths")
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--model",
        help="checkpoint folder or hub id, evaluated in-process (transformers engine); default: "
        "$VIDEOLLM_MODEL, else the starter model (offline)",
    )
    src.add_argument("--endpoint", help="OpenAI-compatible base URL(s), comma-separated: used round-robin")
    p.add_argument("--served-model", help="model name on the endpoint (required with --endpoint)")
    p.add_argument("--api-key", default=None, help="API key for --endpoint (default: $OPENAI_API_KEY)")
    p.add_argument(
        "--video-transport",
        choices=("file", "data"),
        default="file",
        help="send videos to the endpoint as file:// URLs (same machine) or inline data: URLs",
    )
    p.add_argument(
        "--data-root", help="folder holding the benchmarks' files as released (see each task YAML)"
    )
    p.add_argument(
        "--annotations",
        action="append",
        default=[],
        metavar="TASK=PATH",
        help="use this annotation file for TASK instead of looking under --data-root",
    )
    p.add_argument("--limit", type=int, help="only the first N items of each task")
    fr = p.add_mutually_exclusive_group()
    fr.add_argument("--frames", type=int, default=None, help="frames sampled uniformly per video (default 8)")
    fr.add_argument("--fps", type=float, help="frames per second to sample instead (see --max-frames)")
    p.add_argument("--max-frames", type=int, help="cap for --fps sampling")
    p.add_argument(
        "--sampler-mode", choices=("exact", "keyframe"), default="exact", help="frame sampling mode"
    )
    p.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND, help="video decoder (in-process)")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight to the endpoint(s)")
    p.add_argument("--batch-size", type=int, default=4, help="batch size of in-process generation")
    p.add_argument(
        "--device", default=None, help="torch device for --model (default: cuda when available, else cpu)"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed (generation, and lmms-eval's random MC fallback)"
    )
    p.add_argument("--output", help="output folder (default eval_results/<model>)")
    p.add_argument("--resume", action="store_true", help="reuse the predictions already in --output")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_judge_args(p)
    return p


def score_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="videollm eval score",
        description="Re-score predictions produced elsewhere (Video-ChatGPT / Video-LLaVA outputs, lmms-eval sample "
        "logs, videollm predictions) against a benchmark's annotations, e.g. with a pinned judge.",
    )
    p.add_argument("--task", required=True, help="task name (see `videollm eval --list`) or task YAML")
    p.add_argument("--annotations", required=True, help="the benchmark's annotation file, or its data folder")
    p.add_argument("--predictions", required=True, help="the predictions file")
    p.add_argument("--data-root", help="folder of the videos (only used to report missing videos)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", help="output folder (default: next to the predictions, <name>_scored)")
    _add_judge_args(p)
    return p


def list_tasks() -> str:
    specs, suites = all_specs(), all_suites()
    lines = ["tasks:"]
    for name, s in sorted(specs.items()):
        lines.append(f"  {name:<22} {s.kind:<16} {s.description}")
    lines.append("suites:")
    for name, tasks in sorted(suites.items()):
        lines.append(f"  {name:<22} {', '.join(tasks)}")
    return "\n".join(lines)


def _annotation_overrides(values: list[str]) -> dict[str, Path]:
    out = {}
    for v in values:
        if "=" not in v:
            raise TaskError(f"--annotations {v!r}: expected TASK=PATH")
        task, path = v.split("=", 1)
        out[task] = Path(path)
    return out


def main_run(argv: Sequence[str]) -> int:
    from videollm.eval.runner import RunConfig, run, sanitize

    args = run_parser().parse_args(argv)
    if args.list:
        print(list_tasks())
        return 0
    if not args.tasks:
        raise TaskError("give --tasks NAME[,NAME...] (`videollm eval --list` shows them)")
    if args.max_frames is not None and args.fps is None:
        raise TaskError("--max-frames caps --fps sampling; with uniform sampling use --frames N")
    specs = resolve_tasks(args.tasks)
    annotations = _annotation_overrides(args.annotations)
    if args.data_root is None:  # before a model loads: the data is what is missing
        missing = [s.task for s in specs if s.task not in annotations]
        if missing:
            raise TaskError(
                f"{', '.join(missing)}: no --data-root given (the folder holding the benchmark; "
                "`videollm data synth --out DIR` writes the synthetic sets)"
            )
    if args.endpoint:
        if not args.served_model:
            raise TaskError("--endpoint needs --served-model NAME (the model name the server serves)")
        from videollm.eval.client import EndpointEngine

        engine = EndpointEngine(
            args.endpoint,
            args.served_model,
            api_key=args.api_key or os.environ.get("OPENAI_API_KEY"),
            video_transport=args.video_transport,
        )
        model_id = f"endpoint:{args.served_model}"
    else:  # in-process; no --model: the offline default ($VIDEOLLM_MODEL, else the starter), as serve/chat use
        from videollm.inference import default_model
        from videollm.inference.engine import TransformersEngine, model_fingerprint

        model = args.model or default_model()
        engine = TransformersEngine.from_pretrained(model, batch_size=args.batch_size, backend=args.backend)
        model_id = model_fingerprint(model).get("sha256") or str(model)
    name = args.served_model if args.endpoint else (args.model or Path(model).name)
    output = Path(args.output or Path("eval_results") / sanitize(name))
    cfg = RunConfig(
        tasks=specs,
        data_root=args.data_root,
        output=output,
        model_id=model_id,
        model_name=args.served_model if args.endpoint else str(model),
        limit=args.limit,
        frames=(args.frames or 8) if args.fps is None else None,
        fps=args.fps,
        max_frames=args.max_frames,
        sampler_mode=args.sampler_mode,
        concurrency=args.concurrency,
        resume=args.resume,
        seed=args.seed,
        judge=_judge(args, output),
        annotations=annotations,
        progress=not args.no_progress,
    )
    results = run(engine, cfg, argv=["videollm", "eval", *argv])
    print(summary(results))
    print(f"results: {output / 'results.json'}\nreport:  {output / 'report.md'}")
    return 0


def main_score(argv: Sequence[str]) -> int:
    from videollm.eval.loaders import load_items
    from videollm.eval.predictions import read_predictions
    from videollm.eval.runner import rescore

    args = score_parser().parse_args(argv)
    (spec,) = resolve_tasks(args.task)
    ann = Path(args.annotations)
    items = load_items(spec, ann, None) if ann.is_dir() else load_items(spec, args.data_root, ann)
    predictions, fmt = read_predictions(args.predictions, items)
    if not predictions:
        raise TaskError(
            f"{args.predictions}: read as {fmt}, but none of its ids match the {len(items)} items of "
            f"{spec.task} in {ann}; is it the same benchmark split?"
        )
    pred_path = Path(args.predictions)
    output = Path(args.output or pred_path.with_name(pred_path.stem + "_scored"))
    results = rescore(
        spec,
        items,
        predictions,
        output,
        judge=_judge(args, output),
        seed=args.seed,
        source=f"{fmt}: {pred_path}",
        argv=["videollm", "eval", "score", *argv],
    )
    print(f"{args.predictions}: {len(predictions)} predictions read as {fmt}")
    print(summary(results))
    print(f"results: {output / 'results.json'}\nreport:  {output / 'report.md'}")
    return 0


def summary(results: dict) -> str:
    from videollm.eval.report import headline

    lines = []
    for task, m in results["videollm"]["details"].items():
        kind = results["configs"][task]["kind"]
        name, value = headline(kind, m)
        notes = [f"n={m['n']}"]
        if m.get("n_errors"):
            notes.append(f"{m['n_errors']} without prediction")
        if m.get("n_unextractable"):
            notes.append(f"{m['n_unextractable']} without extractable answer")
        if kind == "open_ended" and m.get("judge") is None:
            notes.append("judge score absent: no --judge-endpoint")
        if kind == "open_ended" and m.get("judge_failures"):
            notes.append(f"{m['judge_failures']} judge failures")
        shown = "—" if value is None else f"{value:.2f}"
        lines.append(f"{task}: {name} = {shown} ({'; '.join(notes)})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "score":
            return main_score(argv[1:])
        return main_run(argv)
    except (TaskError, ValueError, FileNotFoundError) as e:
        print(f"videollm eval: error: {e}", file=sys.stderr)
        return 2
