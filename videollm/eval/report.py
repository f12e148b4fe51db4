"""Results JSON (lmms-eval's shape), per-item sample logs, the markdown report and PNG plots.

`results.json` follows lmms-eval's aggregated results file closely enough that its users read it
without a manual: `results[task]["<metric>,none"]`, `group_subtasks`, `configs`, `versions`,
`n-shot`, `higher_is_better`, `n-samples`, `config`, `git_hash`, `date`. Sub-task rows (MVBench)
appear as their own tasks `<task>_<subtask>`, as lmms-eval lists them. What lmms-eval has no place
for sits under `videollm`: provenance, per-group breakdowns, error/failure counts and notes.
Samples are written as lmms-eval's `*_samples_<task>.jsonl` (`doc_id`, `target`,
`filtered_resps`, `input`, + per-item scores).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

HEADLINE = {"multiple_choice": "accuracy", "open_ended": "exact_match", "caption": "CIDEr"}
NUMERIC_KEYS = (
    "accuracy",
    "accuracy_all",
    "accuracy_subtask_mean",
    "exact_match",
    "token_f1",
    "judge_accuracy",
    "judge_score",
    "Bleu_1",
    "Bleu_2",
    "Bleu_3",
    "Bleu_4",
    "METEOR",
    "ROUGE_L",
    "CIDEr",
)
COUNT_KEYS = ("n", "n_errors", "n_unextractable", "judge_failures", "judge_yes", "judge_no", "n_scored_empty")


def headline(kind: str, metrics: dict[str, Any]) -> tuple[str, float | None]:
    if kind == "open_ended" and metrics.get("judge_accuracy") is not None:
        return "judge_accuracy", metrics["judge_accuracy"]
    key = HEADLINE[kind]
    return key, metrics.get(key)


def results_json(task_results: dict[str, dict], provenance: dict, *, model: str, limit: int | None) -> dict:
    results, configs, versions, nshot, hib, nsamples, groups, details = {}, {}, {}, {}, {}, {}, {}, {}
    for task, tr in task_results.items():
        spec, m = tr["spec"], tr["metrics"]
        row: dict[str, Any] = {"alias": task}
        for k in NUMERIC_KEYS + COUNT_KEYS:
            if k in m and m[k] is not None:
                row[f"{k},none"] = m[k]
                if k in NUMERIC_KEYS:
                    row[f"{k}_stderr,none"] = "N/A"
        results[task] = row
        configs[task] = {k: v for k, v in asdict(spec).items()}
        versions[task] = 1.0
        nshot[task] = 0
        hib[task] = {k: True for k in NUMERIC_KEYS if k in m}
        nsamples[task] = {"original": tr["n_original"], "effective": tr["n"]}
        groups[task] = []
        for sub, vals in m.get("by", {}).get("subtask", {}).items():
            name = f"{task}_{sub}"
            results[name] = {
                "alias": f" - {name}",
                **{f"{k},none": v for k, v in vals.items() if v is not None},
            }
            groups[task].append(name)
        details[task] = {k: v for k, v in m.items()}
    return {
        "results": results,
        "group_subtasks": groups,
        "configs": configs,
        "versions": versions,
        "n-shot": nshot,
        "higher_is_better": hib,
        "n-samples": nsamples,
        "config": {
            "model": model,
            "model_args": provenance.get("engine"),
            "limit": limit,
            "random_seed": provenance.get("seed"),
        },
        "git_hash": (provenance.get("git") or {}).get("commit"),
        "date": provenance.get("date"),
        "videollm": {"provenance": provenance, "details": details},
    }


def write_samples(output: Path, task: str, samples: list[dict]) -> Path:
    path = output / "samples" / f"samples_{task}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for s in samples:
            f.write(json.dumps(s, ensure_ascii=False, default=str) + "\n")
    return path


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.2f}" if not math.isnan(v) else "nan"
    return str(v)


def markdown(results: dict) -> str:
    prov = results["videollm"]["provenance"]
    details = results["videollm"]["details"]
    configs = results["configs"]
    eng = prov.get("engine") or {}
    lines = [
        "# videollm evaluation report",
        "",
        f"- model: `{results['config']['model']}` ({eng.get('engine', '?')})",
        f"- date: {prov.get('date')}; videollm {prov.get('videollm')}; commit {prov.get('git', {}).get('commit')}",
        f"- frames: {json.dumps(prov.get('sampling'))}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in prov.get('versions', {}).items() if v)}",
        f"- judge: {json.dumps(prov.get('judge')) if prov.get('judge') else 'none'}",
        f"- seed: {prov.get('seed')}; limit: {results['config'].get('limit')}",
        "",
        "| task | metric | value | n | errors | notes |",
        "|---|---|---|---|---|---|",
    ]
    notes_all = []
    for task, m in details.items():
        kind = configs[task]["kind"]
        name, value = headline(kind, m)
        notes = []
        if kind == "multiple_choice":
            notes.append(f"{m.get('n_unextractable', 0)} without extractable answer")
        if kind == "open_ended":
            if m.get("judge") is None:
                notes.append("judge score absent (no judge endpoint): exact match shown")
            else:
                notes.append(
                    f"score {_fmt(m.get('judge_score'))}/5, {m.get('judge_failures', 0)} judge failures"
                )
        if kind == "caption":
            notes.append("SPICE not computed (needs a model download)")
        lines.append(
            f"| {task} | {name} | {_fmt(value)} | {m.get('n')} | {m.get('n_errors', 0)} | {'; '.join(notes)} |"
        )
    for task, m in details.items():
        kind = configs[task]["kind"]
        lines += ["", f"## {task}", ""]
        scalar = {k: v for k, v in m.items() if k in NUMERIC_KEYS + COUNT_KEYS}
        lines.append(", ".join(f"{k} = {_fmt(v)}" for k, v in scalar.items()))
        if kind == "open_ended" and m.get("judge_note"):
            lines += ["", f"> {m['judge_note']}"]
        if kind == "caption":
            lines += ["", "> SPICE is left out: it needs Stanford CoreNLP models downloaded at first use."]
        if m.get("missing_subtasks"):
            lines += [
                "",
                f"> {len(m['missing_subtasks'])} sub-task(s) of the benchmark are not in the data and not "
                f"scored: {', '.join(m['missing_subtasks'])}",
            ]
        for key, by in m.get("by", {}).items():
            cols = [
                c
                for c in ("accuracy", "exact_match", "token_f1", "judge_accuracy", "judge_score", "n")
                if any(c in v for v in by.values())
            ]
            lines += [
                "",
                f"by {key}:",
                "",
                "| " + key + " | " + " | ".join(cols) + " |",
                "|" + "---|" * (len(cols) + 1),
            ]
            for value, vals in by.items():
                lines.append(f"| {value} | " + " | ".join(_fmt(vals.get(c)) for c in cols) + " |")
        if m.get("n_errors"):
            notes_all.append(
                f"{task}: {m['n_errors']} item(s) had no prediction — see samples/samples_{task}.jsonl (`error`)"
            )
    if notes_all:
        lines += ["", "## Items without a prediction", ""] + [f"- {n}" for n in notes_all]
    lines += ["", "Plots: `plots/accuracy_by_task.png`, `plots/<task>_by_<group>.png`.", ""]
    return "\n".join(lines)


def plots(results: dict, out_dir: Path) -> list[Path]:
    """Bar charts: the headline % per task, and each task's per-group accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    details, configs = results["videollm"]["details"], results["configs"]
    written = []
    pct = {t: headline(configs[t]["kind"], m) for t, m in details.items() if configs[t]["kind"] != "caption"}
    pct = {t: v for t, v in pct.items() if v[1] is not None}
    if pct:
        fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(pct) + 2), 3.5))
        names = list(pct)
        ax.bar(names, [pct[n][1] for n in names], color="#4C72B0")
        ax.set_ylim(0, 100)
        ax.set_ylabel("%")
        ax.set_title("accuracy by task")
        for i, n in enumerate(names):
            ax.text(i, pct[n][1] + 1, f"{pct[n][1]:.1f}\n{pct[n][0]}", ha="center", va="bottom", fontsize=7)
        ax.tick_params(axis="x", labelrotation=30)
        fig.tight_layout()
        path = out_dir / "accuracy_by_task.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    for task, m in details.items():
        kind = configs[task]["kind"]
        metric = (
            "accuracy"
            if kind == "multiple_choice"
            else ("judge_accuracy" if m.get("judge_accuracy") is not None else "exact_match")
        )
        for key, by in m.get("by", {}).items():
            vals = {v: d.get(metric) for v, d in by.items() if d.get(metric) is not None}
            if not vals:
                continue
            fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(vals) + 2), 3.5))
            ax.bar(list(vals), list(vals.values()), color="#55A868")
            for i, (v, acc) in enumerate(vals.items()):
                ax.text(i, acc + 1, f"{acc:.0f}\nn={by[v].get('n')}", ha="center", va="bottom", fontsize=6)
            ax.set_ylim(0, 100)
            ax.set_ylabel(f"{metric} %")
            ax.set_title(f"{task} by {key}")
            ax.tick_params(axis="x", labelrotation=45, labelsize=7)
            fig.tight_layout()
            path = out_dir / f"{task}_by_{key}.png"
            fig.savefig(path, dpi=100)
            plt.close(fig)
            written.append(path)
    return written


def write_all(output: Path, results: dict) -> None:
    (output / "results.json").write_text(
        json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n"
    )
    (output / "report.md").write_text(markdown(results))
    plots(results, output / "plots")
