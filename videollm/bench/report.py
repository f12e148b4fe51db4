"""`videollm bench report`: the README's Results section, generated from the recorded results.

    videollm bench report [--root DIR] [--check]

Reads benchmarks/results/*.json (written by benchmarks/*.py and `videollm bench study`) and the
starter's model card, and rewrites what lies between `<!-- results:begin -->` and
`<!-- results:end -->` in README.md. The README's numbers are never typed by hand, so they cannot
drift from the measurements: `--check` exits 1 when the section differs from what would be written.

Each result names the command, machine, date and load average of its run from the run record that
`videollm.bench.provenance.run_record` writes into it; a json from before that record (an older
"machine" dict, no command) still renders: its command is rebuilt from the parameters it records.
A missing file or field reads "not measured" instead of failing, so a partly finished study still
renders. The output holds no timestamp of its own: the same inputs always give the same section.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BEGIN = "<!-- results:begin -->"
END = "<!-- results:end -->"
README = Path("README.md")
RESULTS = Path("benchmarks/results")
CARD = Path("videollm/starter/assets/MODEL_CARD.md")
NOT_MEASURED = "not measured"
DASH = "—"  # one value not measured, inside a table


class ReportError(ValueError):
    """An input the report cannot use (README without markers, a json that does not parse)."""


# ----- formatting -------------------------------------------------------------------------------


def num(x: Any, digits: int = 3) -> str:
    """About `digits` significant figures; whole numbers from 100 up; a dash for a missing value."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return DASH
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def verdict(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: NOT_MEASURED}[met]


LIBRARIES = ("torch", "transformers", "vllm")  # versions a run record's machine names itself


def machine(record: dict | None, versions: dict | None = None) -> str:
    """A machine record as one phrase: the run record's, or an older benchmark's (each of those named
    different fields); `versions`: more libraries, those the record already names left out."""
    m = record or {}
    parts = [m.get("platform"), m.get("processor") or None]
    cpus = m.get("cpus", m.get("cpu_count"))
    if cpus is not None:
        parts.append(f"{cpus} CPUs")
    if m.get("device"):
        parts.append(f"device {m['device']}" + (f" ({m['gpu']})" if m.get("gpu") else ""))
    if m.get("python"):
        parts.append(f"Python {m['python']}")
    parts += [f"{k} {m[k]}" for k in LIBRARIES if m.get(k)]
    parts += [f"{k} {v}" for k, v in (versions or {}).items() if not m.get(k)]
    text = ", ".join(str(p) for p in parts if p)
    return text or "not recorded"


def provenance(
    result: dict, command: str, source: str, versions: dict | None = None, date: Any = None
) -> list[str]:
    """The line under a heading: the command, machine, date and load at start that `result` records
    (its run record); `command` (rebuilt from its parameters) and `date` for a result that has none."""
    m = result.get("machine") if isinstance(result.get("machine"), dict) else None
    recorded = result.get("command")
    if isinstance(recorded, list) and recorded:  # an argv list (the starter's report records one)
        recorded = shlex.join(str(a) for a in recorded)
    where = machine(m, versions) + (
        f", {m['torch_threads']} torch threads" if m and m.get("torch_threads") else ""
    )
    parts = [
        f"Command: `{recorded if isinstance(recorded, str) and recorded else command}`",
        f"machine: {where}",
        f"date: {result.get('date') or date or 'not recorded'}",
    ]
    load = result.get("load_average")
    if isinstance(load, list) and load and all(isinstance(x, int | float) for x in load):
        parts.append(f"load average at start (1/5/15 min): {' / '.join(f'{x:.2f}' for x in load)}")
    return [" · ".join([*parts, f"data: `{source}`"]), ""]


def _args(*pairs: tuple[str, Any]) -> str:
    """`--flag value` pairs for the recorded values (lists spread, True a bare flag, None/False/[] left out)."""
    out: list[str] = []
    for flag, value in pairs:
        if value is None or value is False or value == []:
            continue
        out.append(flag)
        if value is True:
            continue
        out += [shlex.quote(str(v)) for v in (value if isinstance(value, list | tuple) else [value])]
    return " ".join(out)


def _script(name: str, *pairs: tuple[str, Any]) -> str:
    return " ".join(p for p in (f".venv/bin/python benchmarks/{name}", _args(*pairs)) if p)


# ----- the study ---------------------------------------------------------------------------------


def _acc(cell: dict, kind: str, task: str = "mc") -> Any:
    return (cell.get(task) or {}).get(kind)


def _serving(cell: dict) -> str:
    s = cell.get("serving") or {}
    if "requests_per_s" in s:
        return num(s["requests_per_s"])
    return "skipped" if "skipped" in s else DASH


STUDY_COLUMNS: list[tuple[str, Callable[[dict], str]]] = [
    ("cell", lambda c: str(c.get("cell", DASH))),
    ("frames", lambda c: num(c.get("frames"))),
    ("visual tokens", lambda c: num(c.get("visual_tokens"))),
    ("trainable params", lambda c: num(c.get("trainable_params"))),
    ("QA static", lambda c: num(_acc(c, "static", "qa"))),
    ("QA temporal", lambda c: num(_acc(c, "temporal", "qa"))),
    ("MC static", lambda c: num(_acc(c, "static"))),
    ("MC temporal", lambda c: num(_acc(c, "temporal"))),
    ("CIDEr", lambda c: num(c.get("cider"))),
    ("train s", lambda c: num(c.get("train_time_s"))),
    ("peak MB", lambda c: num(c.get("peak_memory_mb"))),
    ("vLLM req/s", _serving),
]


def study_command(study: dict | None) -> str:
    study = study or {}
    config = study.get("config")
    return "videollm bench study " + _args(
        ("--config", None if config in (None, "train/recipes/study.yaml") else config),
        ("--budget", study.get("budget", "small")),
    )


def _findings(study: dict) -> list[dict]:
    """The verdicts the study wrote; recomputed from the cells when an older file lacks them."""
    if isinstance(study.get("findings"), list):
        return study["findings"]
    from videollm.bench import study_report

    try:
        return study_report.findings(study)
    except (KeyError, TypeError, AttributeError):
        return []


def study_section(study: dict, results: str) -> list[str]:
    cells = {k: v for k, v in (study.get("cells") or {}).items() if isinstance(v, dict)}
    planned = study.get("planned") or list(cells)
    chance = (study.get("chance") or {}).get("mc") or {}
    lines = provenance(study, study_command(study), f"{results}/study.json", date=study.get("created"))
    lines += [
        f"{len(cells)} of {len(planned)} cells measured ({study.get('budget', '?')} budget). Accuracy in % on "
        f"the synthetic world's held-out split: QA = synthetic_qa exact match, MC = synthetic_mc (chance: "
        f"static {num(chance.get('static'))}, temporal {num(chance.get('temporal'))}); CIDEr ×100 on "
        "synthetic_caption; peak MB = training memory above the process before training. "
        f"Per-cell details: [`study.md`]({results}/study.md).",
        "",
    ]
    if cells:
        lines += table(
            [name for name, _ in STUDY_COLUMNS], [[f(c) for _, f in STUDY_COLUMNS] for c in cells.values()]
        )
        lines.append("")
    missing = [name for name in planned if name not in cells]
    if missing:
        lines += [f"Not measured yet: {', '.join(f'`{n}`' for n in missing)}.", ""]
    if study.get("failed"):
        lines += [f"Failed cells: {', '.join(f'`{n}`' for n in study['failed'])}.", ""]
    lines += ["**Does the survey hold on this world?**", ""]
    marks = {True: "holds", False: "**does not hold**", None: NOT_MEASURED}
    findings = _findings(study)
    for f in findings:
        evidence = str(f.get("evidence", "")).removeprefix(f"{NOT_MEASURED}: ").rstrip(".")
        noise = " (within noise)" if f.get("within_noise") else ""
        lines.append(
            f"- {f.get('claim', f.get('id', '?'))}: {marks.get(f.get('holds'), NOT_MEASURED)}{noise} — {evidence}."
        )
    if not findings:
        lines.append(f"- {NOT_MEASURED}: the study recorded no findings.")
    lines.append("")
    return lines


def study_plots(results_dir: Path, results: str) -> list[str]:
    lines = []
    for name, alt in (
        ("study_tokens.png", "accuracy vs visual tokens per connector"),
        ("study_strategies.png", "static vs temporal accuracy per strategy"),
    ):
        if (results_dir / name).is_file():
            lines += [f"![{alt}]({results}/{name})", ""]
        else:
            lines += [f"Plot {alt}: {NOT_MEASURED} (`{results}/{name}` missing).", ""]
    return lines


# ----- the benchmarks -----------------------------------------------------------------------------


def decode_command(d: dict | None) -> str:
    d = d or {}
    sizes = sorted({r["frames"] for r in d.get("results") or [] if isinstance(r, dict) and "frames" in r})
    return _script("decode.py", ("--repeats", d.get("repeats")), ("--sizes", sizes))


def decode_section(d: dict, results: str) -> list[str]:
    v = d.get("video") or {}
    lines = provenance(d, decode_command(d), f"{results}/decode.json", d.get("versions"))
    lines += [
        f"Uniform sampling from a {num(v.get('seconds'))} s {v.get('width', '?')}×{v.get('height', '?')} "
        f"{num(v.get('fps'))} fps {v.get('codec', '?')} video (GOP {v.get('gop', '?')}); best of "
        f"{d.get('repeats', '?')} runs, wall seconds; every method's frames are checked by the counter drawn "
        "into each frame (✗ = wrong frames).",
        "",
    ]
    rows = [r for r in d.get("results") or [] if isinstance(r, dict)]
    methods = list(dict.fromkeys(r.get("method", "?") for r in rows))
    sizes = sorted({r.get("frames") for r in rows if isinstance(r.get("frames"), int)})
    if rows:
        cell = {(r.get("frames"), r.get("method", "?")): r for r in rows}

        def best(frames: int, method: str) -> str:
            r = cell.get((frames, method))
            if r is None:
                return DASH
            return num(r.get("best_s")) + ("" if r.get("correct", True) else " ✗")

        lines += table(["frames", *methods], [[str(n), *(best(n, m) for m in methods)] for n in sizes])
        lines.append("")
    else:
        lines += [f"Timings: {NOT_MEASURED}.", ""]
    targets = [t for t in d.get("targets") or [] if isinstance(t, dict)]
    if targets:
        lines += table(
            ["target", "speed-up (wall)", "speed-up (CPU)", "result"],
            [
                [str(t.get("target", "?")), f"{num(t.get('speedup'))}×", f"{num(t.get('cpu_speedup'))}×",
                 verdict(t.get("met"))]
                for t in targets
            ],
        )  # fmt: skip
        lines.append("")
    return lines


SERVE_DEFAULT_VLLM_ARGS = "--dtype bfloat16 --max-model-len 4096"


def serve_command(d: dict | None) -> str:
    d = d or {}
    model, engines = d.get("model") or {}, d.get("engines") or {}
    if model.get("lm") == "quick":  # --quick fixes clients, requests, tokens and vLLM args
        return _script("serve.py", ("--quick", True), ("--engines", list(engines) or None))
    levels = [lv for e in engines.values() if isinstance(e, dict) for lv in e.get("levels") or []]
    clients = sorted({lv["clients"] for lv in levels if isinstance(lv, dict) and "clients" in lv})
    requests = next((lv.get("requests") for lv in levels if isinstance(lv, dict)), None)
    vllm_args = " ".join((engines.get("vllm") or {}).get("args") or []) or None
    return _script(
        "serve.py",
        ("--engines", list(engines) or None),
        ("--clients", clients),
        ("--requests", requests),
        ("--frames", model.get("frames")),
        ("--max-tokens", model.get("max_tokens")),
        ("--vllm-args", vllm_args),
    )


def serve_section(d: dict, results: str) -> list[str]:
    model = d.get("model") or {}
    lines = provenance(d, serve_command(d), f"{results}/serve.json")
    lines += [
        f"Streaming chat requests with real mp4s of the synthetic world; model: LLaVA-OneVision-shaped, "
        f"{model.get('lm', '?')} LM (random weights: speed only), {model.get('frames', '?')} frames, "
        f"{model.get('max_tokens', '?')} new tokens per request. Latency and time to first token (TTFT) in seconds.",
        "",
    ]
    rows = []
    for engine, e in (d.get("engines") or {}).items():
        if not isinstance(e, dict):
            continue
        measured = [(engine, lv) for lv in e.get("levels") or [] if isinstance(lv, dict)]
        if isinstance(e.get("predecoded_frames"), dict):
            measured.append((f"{engine}, pre-decoded frames", e["predecoded_frames"]))
        for name, lv in measured:
            rows.append(
                [name, num(lv.get("clients")), num(lv.get("requests_per_s")), num(lv.get("tokens_per_s")),
                 num(lv.get("latency_p50_s")), num(lv.get("latency_p95_s")), num(lv.get("ttft_p50_s")),
                 num(lv.get("ttft_p95_s"))]
            )  # fmt: skip
    hf = d.get("hf_one_at_a_time")
    if isinstance(hf, dict):
        rows.append(["HF `generate`, one at a time", "1", num(hf.get("requests_per_s")), *[DASH] * 5])
    header = ["engine", "clients", "req/s", "tokens/s", "latency p50", "latency p95", "TTFT p50", "TTFT p95"]
    lines += [*table(header, rows), ""] if rows else [f"Throughput: {NOT_MEASURED}.", ""]
    ratios, goals = d.get("ratios") or {}, d.get("goals") or {}
    goal_rows = []
    for goal, target in goals.items():
        key = next((k for k in ratios if k == goal or k.startswith(f"{goal}_at_")), None)
        value = ratios.get(key) if key else None
        met = None if not isinstance(value, int | float) else value >= target
        goal_rows.append([f"`{key or goal}`", f"≥ {num(target)}", num(value), verdict(met)])
    for key, value in ratios.items():
        if not any(key == g or key.startswith(f"{g}_at_") for g in goals):
            goal_rows.append([f"`{key}`", "no goal", num(value), DASH])
    if goal_rows:
        lines += [*table(["ratio", "goal", "measured", "result"], goal_rows), ""]
    if d.get("notes"):
        lines += [f"Note recorded with the run: {d['notes']}", ""]
    return lines


def soak_command(d: dict | None) -> str:
    d = d or {}
    engines = d.get("engines") or {}
    first = next((e for e in engines.values() if isinstance(e, dict)), {})
    quick = "quick" in Path(str(d.get("model", ""))).name  # the --quick run's model folder
    return _script(
        "soak.py",
        ("--quick", quick),
        ("--seconds", first.get("seconds")),
        ("--clients", first.get("clients")),
        ("--engines", list(engines) or None),
    )


def soak_section(d: dict, results: str) -> list[str]:
    lines = provenance(d, soak_command(d), f"{results}/soak.json")
    lines += [
        "Clients loop over good requests (plain, streaming, abandoned mid-stream) and bad ones (corrupt mp4, "
        "bad base64, text as mp4, wrong key, unknown model, malformed JSON, too many frames, a host not "
        "allowed). Goals: no 5xx; server memory (RSS of its process tree) flat after warm-up.",
        "",
    ]
    rows = []
    for engine, e in (d.get("engines") or {}).items():
        if not isinstance(e, dict):
            continue
        status = {str(k): v for k, v in (e.get("by_status") or {}).items()}
        fivexx = e.get("server_errors_5xx")
        rows.append(
            [engine, num(e.get("seconds")), num(e.get("clients")), num(sum(status.values()) if status else None),
             ", ".join(f"{k}: {v}" for k, v in sorted(status.items())) or DASH,
             f"{num(fivexx)} ({verdict(None if fivexx is None else fivexx == 0)})",
             f"×{num(e.get('memory_growth_after_warmup'), 4)}"]
        )  # fmt: skip
    header = ["engine", "seconds", "clients", "requests", "by HTTP status", "5xx (goal 0)", "memory growth"]
    lines += [*table(header, rows), ""] if rows else [f"Soak: {NOT_MEASURED}.", ""]
    return lines


def train_command(d: dict | None) -> str:
    d = d or {}
    recipe, rows = d.get("recipe") or {}, [r for r in d.get("results") or [] if isinstance(r, dict)]
    runs = max((len(r.get("samples_per_s_all_runs") or []) for r in rows), default=0) or None
    configs = [r.get("config") for r in rows if r.get("config")]
    all_configs = ["single", "zero2x2", "zero3x2", "zero3_offloadx2"]
    return _script(
        "train.py",
        ("--steps", recipe.get("steps")),
        ("--batch-size", recipe.get("batch_size_per_process")),
        ("--frames", recipe.get("frames")),
        ("--repeats", runs),
        ("--configs", None if configs == all_configs else configs),
    )


def train_section(d: dict, results: str) -> list[str]:
    recipe = d.get("recipe") or {}
    lines = provenance(d, train_command(d), f"{results}/train.json", d.get("versions"))
    lines += [
        f"`videollm train` as users run it: model {recipe.get('model', '?')}, strategy "
        f"`{recipe.get('strategy', '?')}`, {recipe.get('frames', '?')} frames, batch "
        f"{recipe.get('batch_size_per_process', '?')} per process, {recipe.get('steps', '?')} steps; samples/s "
        "is the Trainer's own (best run); memory is each process's peak resident set, next to the resident "
        "set before the model was loaded.",
        "",
    ]

    def per_process(xs: Any) -> str:
        return " / ".join(num(x) for x in xs) if isinstance(xs, list) and xs else DASH

    rows = [
        [str(r.get("config", "?")), num(r.get("processes")), f"`{r['deepspeed']}`" if r.get("deepspeed") else DASH,
         num(r.get("samples_per_s")), num(r.get("train_runtime_s")), per_process(r.get("peak_memory_mb_per_process")),
         per_process(r.get("memory_before_model_mb_per_process")), num(r.get("train_loss"), 4)]
        for r in d.get("results") or [] if isinstance(r, dict)
    ]  # fmt: skip
    header = [
        "config",
        "processes",
        "DeepSpeed",
        "samples/s",
        "train s",
        "peak MB",
        "MB before model",
        "loss",
    ]
    lines += [*table(header, rows), ""] if rows else [f"Training: {NOT_MEASURED}.", ""]
    return lines


def side_command(device: str, entry: dict) -> str:
    setup = entry.get("setup") or {}
    return _script(
        "side_vs_adapter.py",
        ("--steps", setup.get("steps")),
        ("--frames", setup.get("frames")),
        ("--batch", setup.get("batch")),
        ("--device", device),
    )


PEAK = {"peak_rss_mb": "peak RSS MB", "peak_cuda_mb": "peak CUDA MB"}


def side_section(d: dict, results: str) -> list[str]:
    lines: list[str] = []
    for device, entry in d.items():
        if not isinstance(entry, dict):
            continue
        setup = entry.get("setup") or {}
        vision, text = setup.get("vision") or {}, setup.get("text") or {}
        lines += provenance(entry, side_command(device, entry), f"{results}/side_vs_adapter.json")
        lines += [
            f"One AdamW step (forward + backward) per strategy through the trainer's own strategy functions; "
            f"vision tower {vision.get('num_hidden_layers', '?')}×{vision.get('hidden_size', '?')} on "
            f"{setup.get('image_size', '?')} px frames, LM {text.get('num_hidden_layers', '?')}×"
            f"{text.get('hidden_size', '?')}, {setup.get('frames', '?')} frames, batch {setup.get('batch', '?')}. "
            "Saved activations are counted exactly (independent of load); step seconds are the median.",
            "",
        ]
        res = {k: v for k, v in (entry.get("results") or {}).items() if isinstance(v, dict)}
        peak = "peak_cuda_mb" if any("peak_cuda_mb" in r for r in res.values()) else "peak_rss_mb"
        rows = [
            [name, num(r.get("trainable_params")), num(r.get("activation_mb")), num(r.get("step_s")),
             num(r.get("cpu_s_per_step")), num(r.get(peak))]
            for name, r in res.items()
        ]  # fmt: skip
        header = ["strategy", "trainable params", "saved activations MB", "s/step", "CPU s/step", PEAK[peak]]
        lines += [*table(header, rows), ""] if rows else [f"Strategies: {NOT_MEASURED}.", ""]
        for adapter, s in (entry.get("side_savings") or {}).items():
            if isinstance(s, dict):
                pct = {k: num(100 * v) if isinstance(v, int | float) else DASH for k, v in s.items()}
                lines.append(
                    f"- side vs {adapter}: {pct.get('activation_saving', DASH)} % less saved activation, "
                    f"{pct.get('time_saving', DASH)} % less time per step ({pct.get('cpu_time_saving', DASH)} % CPU time)"
                )
        lines.append("")
    return lines or [f"{NOT_MEASURED}: no device entry.", ""]


# ----- the starter model's card -------------------------------------------------------------------


def _tables(lines: list[str]) -> list[tuple[int, list[str]]]:
    """(index of the header line, the table's lines) for every markdown table."""
    out, i = [], 0
    while i < len(lines):
        if (
            lines[i].startswith("|")
            and i + 1 < len(lines)
            and set(lines[i + 1].replace(" ", "")) <= set("|-:")
        ):
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            out.append((i, lines[i:j]))
            i = j
        else:
            i += 1
    return out


def _status(text: str) -> str | None:
    """The card's bold "**Status: …**" statement (it may wrap over lines)."""
    start = text.find("**Status")
    end = text.find("**", start + 2) if start >= 0 else -1
    return " ".join(text[start : end + 2].split()) if end >= 0 else None


def _reproduce(lines: list[str]) -> str | None:
    """The first command in the code block under the card's "## Reproduce" heading."""
    if "## Reproduce" not in lines:
        return None
    fenced = False
    for line in lines[lines.index("## Reproduce") + 1 :]:
        if line.startswith("```"):
            if fenced:
                return None
            fenced = True
        elif fenced and line.strip():
            return line.split("#")[0].strip()
    return None


def starter_section(card: str | None, card_link: str) -> list[str]:
    """The card's status, its held-out accuracy table and its command, quoted: no number of our own."""
    lines = [f"The offline default model's card: [`{CARD.as_posix()}`]({card_link}).", ""]
    if card is None:
        return [*lines, f"Starter accuracy: {NOT_MEASURED} (the card is missing).", ""]
    text = card.splitlines()
    status = _status(card)
    if status:
        lines += [status, ""]
    accuracy = [(i, t) for i, t in _tables(text) if "static" in t[0].lower() and "temporal" in t[0].lower()]
    if accuracy:
        i, rows = accuracy[-1]
        caption = next((ln.strip() for ln in reversed(text[:i]) if ln.strip()), "")
        if caption.endswith(":"):
            lines += [f"From the card — {caption}", ""]
        lines += [*rows, ""]
    else:
        lines += [f"Starter accuracy: {NOT_MEASURED} (the card has no static/temporal accuracy table).", ""]
    command = _reproduce(text)
    if command:
        lines += [f"Command (from the card): `{command}`", ""]
    return lines


# ----- the whole section ---------------------------------------------------------------------------

# (json file, heading, section renderer, command when the file is missing)
BENCHMARKS: list[tuple[str, str, Callable[[dict, str], list[str]], str]] = [
    ("decode.json", "Decoding", decode_section, decode_command(None)),
    ("serve.json", "Serving throughput", serve_section, serve_command(None)),
    ("soak.json", "Serving soak", soak_section, soak_command(None)),
    ("train.json", "Training throughput", train_section, train_command(None)),
    ("side_vs_adapter.json", "Side-tuning vs adapters", side_section, side_command("cpu", {})),
]


def read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ReportError(
            f"{path}: not valid JSON ({e}); rerun the benchmark that writes it, or delete the file"
        ) from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object, got {type(data).__name__}; rerun its benchmark")
    return data


def _rel(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def _guarded(render: Callable[[], list[str]], source: str, command: str) -> list[str]:
    """A section, or a "not measured" line when its file has a shape the renderer does not know."""
    try:
        return render()
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        return [f"{NOT_MEASURED}: `{source}` has an unexpected structure ({e!r}); rerun `{command}`.", ""]


def render(root: Path) -> str:
    """The Results section (the lines between the markers) for the repository at `root`."""
    results_dir, readme_dir = root / RESULTS, (root / README).parent
    results = _rel(results_dir, readme_dir)
    lines = [
        "## Results",
        "",
        f"Generated by `videollm bench report` from `{results}/*.json` and the starter's model card; do not edit "
        "by hand. Each table names the command that measured it: rerun that command, then `videollm bench "
        f"report` (`--check` fails while this section differs from the files). {DASH} = not measured.",
        "",
        "### Transfer-strategy study",
        "",
    ]
    study = read_json(results_dir / "study.json")
    if study is None:
        lines += [f"{NOT_MEASURED}: `{results}/study.json` is missing; run `{study_command(None)}`.", ""]
    else:
        lines += _guarded(
            lambda: study_section(study, results), f"{results}/study.json", study_command(study)
        )
    lines += study_plots(results_dir, results)
    for name, heading, section, default in BENCHMARKS:
        lines += [f"### {heading}", ""]
        data = read_json(results_dir / name)
        if data is None:
            lines += [f"{NOT_MEASURED}: `{results}/{name}` is missing; run `{default}`.", ""]
        else:
            lines += _guarded(lambda s=section, d=data: s(d, results), f"{results}/{name}", default)
    card = root / CARD
    lines += ["### Starter model", ""]
    lines += starter_section(card.read_text() if card.is_file() else None, _rel(card, readme_dir))
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"


def splice(readme: str, section: str, where: str = "README.md") -> str:
    """`readme` with everything between the two markers replaced by `section`."""
    begin, end = readme.find(BEGIN), readme.find(END)
    if begin < 0 or end < 0 or readme.count(BEGIN) != 1 or readme.count(END) != 1 or end < begin:
        raise ReportError(
            f"{where}: needs exactly one '{BEGIN}' line followed by one '{END}' line where the Results "
            "section goes; add them (an empty pair is fine) and rerun `videollm bench report`"
        )
    return readme[: begin + len(BEGIN)] + "\n" + section + readme[end:]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="videollm bench report",
        description="Write README.md's Results section from benchmarks/results/*.json and the starter's model card.",
    )
    p.add_argument(
        "--root", type=Path, default=Path("."), help="the repository (default: the current folder)"
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if README.md's Results section is out of date",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    readme = args.root / README
    try:
        if not readme.is_file():
            raise ReportError(f"{readme}: no such file; pass --root with the repository folder")
        old = readme.read_text()
        new = splice(old, render(args.root), str(readme))
    except ReportError as e:
        print(f"videollm bench report: error: {e}", file=sys.stderr)
        return 2
    if new == old:
        print(f"{readme}: Results section is up to date")
        return 0
    if args.check:
        diff = difflib.unified_diff(
            old.splitlines(), new.splitlines(), str(readme), "generated", lineterm="", n=1
        )
        print("\n".join(list(diff)[:40]), file=sys.stderr)
        print(
            f"{readme}: the Results section differs from {args.root / RESULTS}; run `videollm bench report`",
            file=sys.stderr,
        )
        return 1
    readme.write_text(new)
    print(f"wrote the Results section of {readme}")
    return 0


__all__ = ["BEGIN", "END", "ReportError", "main", "render", "splice"]
