"""The recipe: one YAML file that fully describes a training run, as typed dataclasses.

`load_recipe(path, overrides)` reads the YAML, applies `key=value` overrides (dotted paths into the
tree, list items by index: `lora.r=16`, `data.files.0.weight=2`; values parsed as YAML), and checks
every field's type. Errors name the file, the field and the fix: an unknown field lists the valid
ones (with the closest match), a wrong type says what was expected. Relative paths in a recipe
(data files, media roots, DeepSpeed config) are resolved against the recipe's folder, or the current
directory when that is where they exist, so recipes run from anywhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

STRATEGIES = ("frozen", "prompt", "side", "adapter", "lora", "qlora", "full")
Strategy = Literal["frozen", "prompt", "side", "adapter", "lora", "qlora", "full"]


class RecipeError(ValueError):
    """A recipe that cannot run as written; the message names the file, the field and the fix."""


@dataclass
class ModelSpec:
    """Where the model comes from and how the image model becomes a video model.

    `base` is a videollm / LLaVA-OneVision checkpoint (loaded as is), or a LLaVA-family image model
    (then `connector` and `config` say how it becomes a video model); `vision` + `lm` instead join a
    vision encoder and a causal LM with a fresh projector (a local folder or a hub id each); `tiny`
    builds `videollm.model.tiny(**tiny)`, a seeded toy model for smoke tests and CI.
    """

    base: str | None = None
    tiny: dict | None = None
    vision: str | None = None
    lm: str | None = None
    connector: str | dict | None = None
    config: dict = field(default_factory=dict)  # VideoLLMConfig fields: newline, num_frames, ...


@dataclass
class DataFile:
    """One LLaVA JSON/JSONL file of the mixture; `weight` = times each record is seen per epoch."""

    path: str
    media_root: str | None = None
    weight: float = 1.0


@dataclass
class DataSpec:
    files: list[DataFile] = field(default_factory=list)
    eval_files: list[DataFile] = field(default_factory=list)
    num_workers: int = 0
    frame_cache: str | None = None  # folder for decoded frames (reused across epochs and runs)
    group_by_modality: bool = True
    images_as_video: bool = (
        False  # each image enters as a one-frame video (the video path), not the image path
    )


@dataclass
class FramesSpec:
    """Frame sampling: `uniform` (num_frames evenly) or `fps` (rate, at most max_frames), lmms-eval style."""

    sampler: Literal["uniform", "fps"] = "uniform"
    num_frames: int = 8
    fps: float | None = None
    max_frames: int | None = None


@dataclass
class LoraSpec:
    """peft LoRA. `target_modules` is a regex over module names: the LM's projections by default, so
    the vision tower stays untouched unless the regex names it."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
    bias: Literal["none", "all", "lora_only"] = "none"


@dataclass
class DistillSpec:
    """The `distill` add-on: keep the adapted model close to the frozen image model.

    `target: vision` matches the vision features to the frozen encoder's (MSE); `target: lm` matches
    the LM's next-token distributions to the frozen model's (KL at `temperature`) on image samples
    (`apply_to: image`) or on all samples (`apply_to: all`).
    """

    weight: float = 0.0
    target: Literal["vision", "lm"] = "vision"
    temperature: float = 1.0
    apply_to: Literal["image", "all"] = "image"


@dataclass
class Recipe:
    name: str = "run"
    # align: projector/connector only, on captions (strategy frozen); finetune: instruction tuning, any strategy
    stage: Literal["align", "finetune"] = "finetune"
    model: ModelSpec = field(default_factory=ModelSpec)
    strategy: Strategy = "frozen"
    lora: LoraSpec = field(default_factory=LoraSpec)
    adapter: dict | None = None  # videollm.model.adapters.AdapterConfig fields (strategy adapter)
    prompt: dict | None = None  # videollm.model.adapters.PromptConfig fields (strategy prompt)
    side: dict | None = None  # videollm.model.side.SideConfig fields (strategy side)
    distill: DistillSpec | None = None
    data: DataSpec = field(default_factory=DataSpec)
    frames: FramesSpec = field(default_factory=FramesSpec)
    deepspeed: str | None = None  # a DeepSpeed JSON config (train/deepspeed/zero2.json, ...)
    batch_size: int = 1  # per device
    grad_accum: int = 1
    lr: float = 2e-5  # the LM's learning rate, and the default of the two below
    lr_vision: float | None = None
    lr_projector: float | None = None  # projector, connector, newline, adapters and prompts
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"  # transformers SchedulerType name
    warmup_ratio: float = 0.03
    warmup_steps: int = 0
    epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs
    max_length: int = 2048
    gradient_checkpointing: bool = False
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    save_steps: int = 500
    save_total_limit: int | None = None
    eval_steps: int | None = None
    log_steps: int = 10
    output_dir: str = "runs/run"
    resume: bool | str = False  # true: the last checkpoint in output_dir; or a checkpoint folder
    seed: int = 0
    log_samples: bool = False  # write the sample ids each rank trains on to output_dir/samples.rank<R>.jsonl

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----- typed loading ------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """`value` checked (and converted, for dataclasses and int→float) against the annotation `tp`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        real = [o for o in options if o is not type(None)]
        if len(real) == 1:  # Optional[X]: X's own error is the informative one
            return _coerce(value, real[0], where)
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except RecipeError:
                continue
        raise RecipeError(f"field {where!r}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            close = difflib.get_close_matches(str(value), [str(a) for a in typing.get_args(tp)], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise RecipeError(f"field {where!r}: {value!r} is not one of {_type_name(tp)}{hint}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise RecipeError(f"field {where!r}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if isinstance(value, str) and tp is DataFile:
            value = {"path": value}  # a bare path is a file with the default root and weight
        if not isinstance(value, dict):
            raise RecipeError(f"field {where!r}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return dataclass_from_dict(tp, value, where)
    if tp is float:
        if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RecipeError(f"field {where!r}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(f"field {where!r}: expected an integer, got {value!r}")
        return value
    if tp in (bool, str, dict):
        if not isinstance(value, tp):
            raise RecipeError(f"field {where!r}: expected {tp.__name__}, got {value!r}")
        return value
    raise TypeError(f"unsupported recipe field type {tp!r}")


def dataclass_from_dict(cls: type, values: dict, where: str) -> Any:
    """A config dataclass from its raw YAML tree, every field typed and checked (`where`: the dotted path so far).

    Public because the starter and study configs are checked by it too, with the same field-naming errors.
    """
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in hints:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise RecipeError(f"unknown field {path!r}; {hint}valid fields here: {', '.join(names)}")
        kwargs[key] = _coerce(value, hints[key], path)
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
        and f.name not in kwargs
    ]
    if missing:
        raise RecipeError(f"{where or 'recipe'}: missing required field(s) {', '.join(missing)}")
    return cls(**kwargs)


def apply_override(tree: dict, override: str) -> None:
    """Set one `dotted.key=value` in the raw recipe tree (value parsed as YAML)."""
    if "=" not in override:
        raise RecipeError(
            f"override {override!r} is not key=value (e.g. lr=1e-4, lora.r=16, data.files.0.weight=2)"
        )
    key, raw = override.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise RecipeError(f"override {override!r}: value is not valid YAML ({e})") from None
    parts = key.strip().split(".")
    node: Any = tree
    for depth, part in enumerate(parts[:-1]):
        child = None
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            child = node[int(part)]
            if isinstance(child, str) and depth >= 1 and parts[depth - 1] in ("files", "eval_files"):
                child = node[int(part)] = {"path": child}  # a bare data-file path, now given fields
        if isinstance(node, dict):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
        if not isinstance(child, dict | list):
            raise RecipeError(f"override {override!r}: {'.'.join(parts[: depth + 1])} is not a section")
        node = child
    last = parts[-1]
    if isinstance(node, list):
        if not (last.isdigit() and int(last) < len(node)):
            raise RecipeError(f"override {override!r}: {last!r} is not an index of a {len(node)}-item list")
        node[int(last)] = value
    else:
        node[last] = value


def recipe_from_dict(tree: dict, source: str = "recipe") -> Recipe:
    try:
        return dataclass_from_dict(Recipe, tree, "")
    except RecipeError as e:
        raise RecipeError(f"{source}: {e}") from None


def _resolve(path: str | None, base: Path) -> str | None:
    """A recipe-relative path: relative to the recipe's folder unless it exists relative to the cwd."""
    if path is None or Path(path).is_absolute() or Path(path).exists():
        return path
    candidate = base / path
    return str(candidate) if candidate.exists() else path


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a YAML recipe, apply `key=value` overrides, check every field."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe {path} not found")
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(tree, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of fields, got {type(tree).__name__}")
    for override in overrides:
        try:
            apply_override(tree, override)
        except RecipeError as e:
            raise RecipeError(f"{path}: {e}") from None
    recipe = recipe_from_dict(tree, str(path))
    base = path.parent
    for f in [*recipe.data.files, *recipe.data.eval_files]:
        f.path = _resolve(f.path, base)
        f.media_root = _resolve(f.media_root, base)
    recipe.deepspeed = _resolve(recipe.deepspeed, base)
    check_recipe(recipe, str(path))
    return recipe


def check_recipe(recipe: Recipe, source: str = "recipe") -> None:
    """Cross-field checks that types alone cannot express."""
    problems = []
    m = recipe.model
    sources = [bool(m.base), bool(m.vision or m.lm), m.tiny is not None]
    if sum(sources) != 1:
        problems.append("give exactly one of model.base, model.vision + model.lm, or model.tiny")
    elif (m.vision or m.lm) and not (m.vision and m.lm):
        problems.append("model.vision and model.lm go together (a vision encoder and a causal LM)")
    if not recipe.data.files:
        problems.append("data.files is empty; list at least one LLaVA JSON/JSONL file")
    for name in ("batch_size", "grad_accum", "max_length", "log_steps", "save_steps"):
        if getattr(recipe, name) < 1:
            problems.append(f"{name} must be >= 1, got {getattr(recipe, name)}")
    if recipe.frames.num_frames < 1:
        problems.append(f"frames.num_frames must be >= 1, got {recipe.frames.num_frames}")
    if recipe.frames.sampler == "fps" and not (recipe.frames.fps and recipe.frames.fps > 0):
        problems.append("frames.sampler is 'fps' but frames.fps is not a rate > 0")
    for name in ("lr", "lr_vision", "lr_projector"):
        value = getattr(recipe, name)
        if value is not None and value < 0:
            problems.append(f"{name} must be >= 0, got {value}")
    if recipe.stage == "align" and recipe.strategy != "frozen":
        problems.append(
            f"stage 'align' trains the projector and connector only (LLaVA's alignment stage), so its strategy is "
            f"'frozen', not {recipe.strategy!r}; use stage finetune for {recipe.strategy}"
        )
    if recipe.strategy == "adapter" and recipe.adapter is None:
        recipe.adapter = {}
    if recipe.strategy == "prompt" and recipe.prompt is None:
        recipe.prompt = {}
    if recipe.strategy == "side" and recipe.side is None:
        recipe.side = {}
    if (
        recipe.distill is not None
        and recipe.distill.weight > 0
        and recipe.strategy in ("frozen", "prompt", "side")
    ):
        problems.append(
            f"distill is an add-on to modified-feature strategies (adapter, lora, qlora, full); strategy "
            f"{recipe.strategy!r} leaves the image model's features unchanged, so there is nothing to distill"
        )
    if recipe.deepspeed is not None and not Path(recipe.deepspeed).is_file():
        problems.append(f"deepspeed config {recipe.deepspeed} not found (see train/deepspeed/*.json)")
    if problems:
        raise RecipeError(f"{source}: " + "; ".join(problems))


__all__ = [
    "STRATEGIES",
    "DataFile",
    "DataSpec",
    "DistillSpec",
    "FramesSpec",
    "LoraSpec",
    "ModelSpec",
    "Recipe",
    "RecipeError",
    "apply_override",
    "check_recipe",
    "dataclass_from_dict",
    "load_recipe",
    "recipe_from_dict",
]
