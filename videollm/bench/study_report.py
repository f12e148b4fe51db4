"""The study's report: the survey's findings checked against our numbers, a markdown table, two plots.

Every verdict is computed from the cells' results (None when a cell it needs was not run), and its
evidence quotes the numbers, so the report says where our world agrees with the survey and where not.
Temporal/static accuracy means synthetic_mc accuracy (chance is defined there: one over the number
of candidates); synthetic_qa exact match is reported next to it in the table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

NEAR_CHANCE = 10.0  # points above chance that still count as "near chance"
BASELINE_MARGIN = 30.0  # points a temporal connector must beat the single-frame baseline by
SMALL_COST = 5.0  # points of accuracy that spatial pooling to half resolution may cost and be "little"
TEMPORAL_CONNECTORS = ("spatiotemporal_pool", "pool3d", "slowfast", "resampler", "token_merge", "frames")
DISENTANGLED = ("spatiotemporal_pool", "slowfast")
ENTANGLED = ("frames", "spatial_pool")


def _acc(cell: dict | None, kind: str = "temporal", task: str = "mc") -> float | None:
    if cell is None:
        return None
    return (cell.get(task) or {}).get(kind)


def _find(cells: dict[str, dict], **match: str) -> dict | None:
    for cell in cells.values():
        if all(cell.get(k) == v for k, v in match.items()):
            return cell
    return None


def _sweep(cells: dict[str, dict], connector: str, variant: str = "hi") -> dict | None:
    return _find(cells, sweep="connector", connector=connector, variant=variant)


def _strategy(cells: dict[str, dict], label: str) -> dict | None:
    return _find(cells, sweep="strategy", strategy=label) or next(
        (c for c in cells.values() if c.get("strategy") == label and c.get("variant") == "hi"), None
    )


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f}"


def _se(cell: dict | None, kind: str = "temporal", task: str = "mc") -> float | None:
    """Standard error (points) of a cell's accuracy: binomial, over the questions it was scored on."""
    p, scores = _acc(cell, kind, task), (cell or {}).get(task) or {}
    n = scores.get("n" if kind == "all" else f"n_{kind}")
    if p is None or not n:
        return None
    return 100.0 * math.sqrt(max(p / 100.0 * (1 - p / 100.0), 1e-4) / n)


def _noise(a: dict | None, b: dict | None, kind: str = "temporal") -> float | None:
    """Standard error (points) of the difference of two cells' accuracies (independent samples)."""
    sa, sb = _se(a, kind), _se(b, kind)
    return None if sa is None or sb is None else math.hypot(sa, sb)


def _mean_noise(a: list[dict], b: list[dict], kind: str = "temporal") -> float | None:
    """Standard error (points) of the difference of two groups' mean accuracies."""
    errors = [[_se(c, kind) for c in group] for group in (a, b)]
    if any(e is None for group in errors for e in group):
        return None
    return math.sqrt(sum(sum(e * e for e in group) / len(group) ** 2 for group in errors))


def _finding(
    key: str,
    claim: str,
    holds: bool | None,
    evidence: str,
    gap: float | None = None,
    noise: float | None = None,
) -> dict[str, Any]:
    """A verdict with its evidence; with the compared `gap` and its standard error `noise` (points) the
    finding also says whether the gap is within noise (|gap| < 2 s.e.): on a test split of a few dozen
    questions per kind, a few points either way decide nothing."""
    out = {"id": key, "claim": claim, "holds": holds, "evidence": evidence}
    if gap is not None and noise is not None:
        out |= {"gap": gap, "noise": noise, "within_noise": abs(gap) < 2 * noise}
        out["evidence"] += f" (gap {gap:+.1f} ± {noise:.1f} points, 1 s.e.)"
    return out


def _missing(key: str, claim: str, what: str) -> dict[str, Any]:
    return _finding(key, claim, None, f"{what}: not in this run")


def findings(study: dict) -> list[dict[str, Any]]:
    """The survey's claims (and the baseline check), each with a verdict from the cells' numbers."""
    cells = study["cells"]
    chance = study.get("chance", {}).get("mc", {}).get("temporal")
    out = []
    base = _find(cells, sweep="baseline")

    # the premise of every other finding: the image model the cells start from reads its frame
    claim = f"the image-stage model sees: its single-frame static MC accuracy beats chance by ≥ {NEAR_CHANCE:g} points"
    static_chance = study.get("chance", {}).get("mc", {}).get("static")
    if base is None or static_chance is None:
        out.append(_missing("image_model_sees", claim, "the single-frame baseline"))
    else:
        b = _acc(base, "static")
        out.append(
            _finding(
                "image_model_sees",
                claim,
                b is not None and b - static_chance >= NEAR_CHANCE,
                f"baseline static MC accuracy {_fmt(b)} % vs chance {_fmt(static_chance)} %; when this does not "
                "hold, the cells start from a model that does not read its frames and the findings below "
                "cannot show the survey's effects",
            )
        )

    claim = f"the single-frame baseline is near chance on temporal questions (within {NEAR_CHANCE:g} points)"
    if base is None or chance is None:
        out.append(_missing("baseline_near_chance", claim, "the single-frame baseline"))
    else:
        b = _acc(base)
        out.append(
            _finding(
                "baseline_near_chance",
                claim,
                b is not None and abs(b - chance) <= NEAR_CHANCE,
                f"baseline temporal MC accuracy {_fmt(b)} % vs chance {_fmt(chance)} %",
            )
        )

    claim = f"at least one temporal connector beats the single-frame baseline by ≥ {BASELINE_MARGIN:g} points on temporal questions"
    temporal = [
        c
        for c in cells.values()
        if c.get("sweep") == "connector" and c.get("connector") in TEMPORAL_CONNECTORS
    ]
    if base is None or not temporal:
        out.append(
            _missing("temporal_connector_beats_baseline", claim, "the baseline or a temporal connector cell")
        )
    else:
        best = max(temporal, key=lambda c: _acc(c) or -1.0)
        gap = (_acc(best) or 0.0) - (_acc(base) or 0.0)
        out.append(
            _finding(
                "temporal_connector_beats_baseline",
                claim,
                gap >= BASELINE_MARGIN,
                f"best: {best['cell']} {_fmt(_acc(best))} % vs baseline {_fmt(_acc(base))} %",
                gap,
                _noise(best, base),
            )
        )

    adapters = [
        c for c in (_strategy(cells, "adapter_st"), _strategy(cells, "adapter_mamba")) if c is not None
    ]
    side, frozen = _strategy(cells, "side"), _strategy(cells, "frozen")
    for key, claim, other, name in (
        ("adapter_beats_side", "adapter fine-tuning beats side-tuning (the survey's finding)", side, "side"),
        ("adapter_beats_frozen", "adapters (modified features) beat frozen features", frozen, "frozen"),
    ):
        if not adapters or other is None:
            out.append(_missing(key, claim, f"an adapter cell and the {name} cell"))
            continue
        best = max(adapters, key=lambda c: _acc(c, "all") or -1.0)
        out.append(
            _finding(
                key,
                claim,
                (_acc(best, "all") or 0.0) > (_acc(other, "all") or 0.0),
                f"{best['cell']}: MC {_fmt(_acc(best, 'all'))} % (temporal {_fmt(_acc(best))}) vs {other['cell']}: "
                f"MC {_fmt(_acc(other, 'all'))} % (temporal {_fmt(_acc(other))})",
                (_acc(best, "all") or 0.0) - (_acc(other, "all") or 0.0),
                _noise(best, other, "all"),
            )
        )

    claim = "disentangled spatial/temporal modelling (spatiotemporal_pool, slowfast) helps temporal questions"
    dis = [c for c in (_sweep(cells, n) for n in DISENTANGLED) if c is not None]
    ent = [c for c in (_sweep(cells, n) for n in ENTANGLED) if c is not None]
    if not dis or not ent:
        out.append(
            _missing(
                "disentangled_helps_temporal",
                claim,
                "spatiotemporal_pool/slowfast and frames/spatial_pool cells",
            )
        )
    else:
        d = sum(_acc(c) or 0.0 for c in dis) / len(dis)
        e = sum(_acc(c) or 0.0 for c in ent) / len(ent)
        out.append(
            _finding(
                "disentangled_helps_temporal",
                claim,
                d > e,
                f"temporal MC: disentangled mean {d:.1f} % ({', '.join(c['cell'] + ' ' + _fmt(_acc(c)) for c in dis)}) vs "
                f"per-frame mean {e:.1f} % ({', '.join(c['cell'] + ' ' + _fmt(_acc(c)) for c in ent)})",
                d - e,
                _mean_noise(dis, ent),
            )
        )

    claim = f"spatial pooling to half resolution costs little (≤ {SMALL_COST:g} points; PLLaVA, LLaVA-Video)"
    half, full = _sweep(cells, "spatial_pool"), _sweep(cells, "frames")
    if half is None or full is None:
        out.append(_missing("half_resolution_cheap", claim, "spatial_pool/hi and frames/hi"))
    else:
        cost = (_acc(full, "all") or 0.0) - (_acc(half, "all") or 0.0)
        out.append(
            _finding(
                "half_resolution_cheap",
                claim,
                cost <= SMALL_COST,
                f"frames/hi MC {_fmt(_acc(full, 'all'))} % ({full['visual_tokens']} tokens) vs spatial_pool/hi "
                f"{_fmt(_acc(half, 'all'))} % ({half['visual_tokens']} tokens): cost {cost:+.1f} points",
                cost,
                _noise(full, half, "all"),
            )
        )

    claim = "temporal pooling hurts temporal questions (PLLaVA)"
    t_full, t_half = _sweep(cells, "pool3d", "hi"), _sweep(cells, "pool3d", "lo")
    if t_full is None or t_half is None:
        out.append(_missing("temporal_pooling_hurts", claim, "pool3d/hi and pool3d/lo"))
    else:
        out.append(
            _finding(
                "temporal_pooling_hurts",
                claim,
                (_acc(t_half) or 0.0) < (_acc(t_full) or 0.0),
                f"pool3d t={t_full['connector_config'].get('t')}: temporal MC {_fmt(_acc(t_full))} % vs "
                f"t={t_half['connector_config'].get('t')}: {_fmt(_acc(t_half))} %",
                (_acc(t_full) or 0.0) - (_acc(t_half) or 0.0),
                _noise(t_full, t_half),
            )
        )

    claim = "at equal budget, more frames with fewer tokens each beats fewer frames with more tokens (LLaVA-Video)"
    many, few = _sweep(cells, "pool3d", "hi"), _sweep(cells, "pool3d", "fewframes")
    if many is None or few is None:
        out.append(_missing("more_frames_fewer_tokens", claim, "pool3d/hi and pool3d/fewframes"))
    else:
        out.append(
            _finding(
                "more_frames_fewer_tokens",
                claim,
                (_acc(many, "all") or 0.0) > (_acc(few, "all") or 0.0),
                f"{many['connector_config']} ({many['visual_tokens']} tokens): MC {_fmt(_acc(many, 'all'))} % vs "
                f"{few['connector_config']} ({few['visual_tokens']} tokens): MC {_fmt(_acc(few, 'all'))} %",
                (_acc(many, "all") or 0.0) - (_acc(few, "all") or 0.0),
                _noise(many, few, "all"),
            )
        )
    return out


# ----- table, plots, files ------------------------------------------------------------------------


def _throughput(cell: dict) -> str:
    s = cell.get("serving") or {}
    return f"{s['requests_per_s']:.2f}" if "requests_per_s" in s else "skipped"


def cell_line(cell: dict) -> str:
    """One line per finished cell, for the progress log."""
    return (
        f"{cell['visual_tokens']} tokens, MC static {_fmt(_acc(cell, 'static'))} / temporal {_fmt(_acc(cell))} %, "
        f"QA temporal {_fmt(_acc(cell, 'temporal', 'qa'))} %, CIDEr {_fmt(cell.get('cider'))}, "
        f"train {cell['train_time_s']:.0f} s, vLLM {_throughput(cell)} req/s"
    )


COLUMNS: list[tuple[str, Callable[[dict], str]]] = [
    ("cell", lambda c: c["cell"]),
    ("strategy", lambda c: c["strategy"]),
    ("connector", lambda c: f"{c['connector']}/{c['variant']}"),
    ("frames", lambda c: str(c["frames"])),
    ("visual tokens", lambda c: str(c["visual_tokens"])),
    ("trainable params", lambda c: f"{c['trainable_params']:,}"),
    ("QA static", lambda c: _fmt(_acc(c, "static", "qa"))),
    ("QA temporal", lambda c: _fmt(_acc(c, "temporal", "qa"))),
    ("MC static", lambda c: _fmt(_acc(c, "static"))),
    ("MC temporal", lambda c: _fmt(_acc(c))),
    ("CIDEr", lambda c: _fmt(c.get("cider"))),
    ("train s", lambda c: f"{c['train_time_s']:.0f}"),
    ("peak MB", lambda c: "—" if c.get("peak_memory_mb") is None else f"{c['peak_memory_mb']:.0f}"),
    ("vLLM req/s", _throughput),
]


def markdown(study: dict) -> str:
    cells = study["cells"]
    chance = study.get("chance", {}).get("mc", {})
    m = study.get("machine", {})
    lines = [
        f"# Transfer-strategy study ({study.get('budget')} budget)",
        "",
        f"Machine: {m.get('platform')}, {m.get('cpu_count')} CPUs, device {m.get('device')}"
        + (f" ({m['gpu']})" if m.get("gpu") else "")
        + f", torch {m.get('torch')}. Created {study.get('created')} by `videollm bench study --budget {study.get('budget')}`.",
        "",
        f"Cells finished: {len(cells)} of {len(study.get('planned', cells))}. Accuracy in %; MC chance: "
        f"static {_fmt(chance.get('static'))}, temporal {_fmt(chance.get('temporal'))}. CIDEr ×100. "
        "Peak MB: training memory above the process before training.",
        "",
        "| " + " | ".join(name for name, _ in COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for cell in cells.values():
        lines.append("| " + " | ".join(f(cell) for _, f in COLUMNS) + " |")
    lines += ["", "## Does the survey hold on this world?", ""]
    mark = {True: "holds", False: "does not hold", None: "not measured"}
    for f in study.get("findings", []):
        noise = " (within noise)" if f.get("within_noise") else ""
        lines.append(f"- **{f['claim']}**: {mark[f['holds']]}{noise}. {f['evidence']}.")
    if study.get("failed"):
        lines += [
            "",
            f"Failed cells (tracebacks in their `error.txt`; rerun with --resume): {', '.join(study['failed'])}",
        ]
    skipped = {c["serving"]["skipped"] for c in cells.values() if "skipped" in (c.get("serving") or {})}
    if skipped:
        lines += ["", "Serving throughput skipped: " + "; ".join(sorted(skipped))]
    lines += [
        "",
        "![accuracy vs visual tokens](study_tokens.png)",
        "",
        "![static vs temporal](study_strategies.png)",
        "",
    ]
    return "\n".join(lines)


def _tokens_figure(plt: Any, cells: dict[str, dict], chance: dict) -> Any:
    """Accuracy vs visual tokens, one line per connector family, temporal and static side by side."""
    base = _find(cells, sweep="baseline")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    families = sorted({c["connector"] for c in cells.values() if c.get("sweep") == "connector"})
    for ax, kind in zip(axes, ("temporal", "static"), strict=True):
        for family in families:
            pts = sorted(
                (c["visual_tokens"], _acc(c, kind))
                for c in cells.values()
                if c.get("sweep") == "connector" and c["connector"] == family and _acc(c, kind) is not None
            )
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=family)
        if base is not None and _acc(base, kind) is not None:
            ax.axhline(_acc(base, kind), color="black", linestyle=":", label="single frame")
        if chance.get(kind) is not None:
            ax.axhline(chance[kind], color="grey", linestyle="--", label="chance")
        ax.set_xscale("log")
        ax.set_xlabel("visual tokens per video")
        ax.set_title(f"{kind} questions (synthetic_mc)")
    axes[0].set_ylabel("accuracy (%)")
    axes[1].legend(fontsize=7, loc="best")
    return fig


def _strategies_figure(plt: Any, cells: dict[str, dict], chance: dict) -> Any:
    """Static and temporal accuracy bars per strategy cell, the single-frame baseline last."""
    rows = [c for c in cells.values() if c.get("sweep") in ("strategy", "baseline")]
    rows.sort(key=lambda c: (c["sweep"] == "baseline", c["strategy"]))
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(rows) + 2), 4))
    xs = range(len(rows))
    for offset, kind in ((-0.2, "static"), (0.2, "temporal")):
        ax.bar([x + offset for x in xs], [_acc(c, kind) or 0.0 for c in rows], width=0.4, label=kind)
    if chance.get("temporal") is not None:
        ax.axhline(chance["temporal"], color="grey", linestyle="--", label="chance")
    ax.set_xticks(
        list(xs), [c["strategy"] if c["sweep"] != "baseline" else "single frame" for c in rows], rotation=20
    )
    ax.set_ylabel("synthetic_mc accuracy (%)")
    ax.set_title("static vs temporal accuracy per strategy")
    ax.legend(fontsize=8)
    return fig


PLOTS = (("study_tokens.png", _tokens_figure), ("study_strategies.png", _strategies_figure))


def plots(study: dict, out: Path) -> list[Path]:
    """study_tokens.png (accuracy vs visual tokens per connector), study_strategies.png (static vs temporal)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chance = study.get("chance", {}).get("mc", {})
    paths = []
    for name, figure in PLOTS:
        fig = figure(plt, study["cells"], chance)
        fig.tight_layout()
        paths.append(out / name)
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def write(study: dict, out: Path) -> list[Path]:
    """study.json, study.md and the plots in `out`; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(json.dumps(study, indent=2, default=str) + "\n")
    (out / "study.md").write_text(markdown(study))
    return [out / "study.json", out / "study.md", *plots(study, out)]


__all__ = ["cell_line", "findings", "markdown", "plots", "write"]
