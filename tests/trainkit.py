"""Shared material for the data, training and evaluation tests: a small synthetic world, a tiny saved base model,
recipes written to disk, short real training runs and their weights, and the tiny stock LLaVA-OneVision
processor.

Plain functions (import them); `world_fixture` / `base_fixture` make the module-scoped fixtures that
training test modules cache them in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def render_world(out: Path, num_videos: int = 6, frames: int = 8, size: int = 32, seed: int = 0) -> Path:
    """A synthetic world (train + test splits of real H.264 clips, PNG frames, LLaVA JSON) under `out`."""
    from videollm.data.synthetic import render_world as render

    render(out, num_videos=num_videos, seed=seed, frames=frames, size=size, num_test_videos=2)
    return out


def synth_test_split(out: Path, num_test_videos: int, seed: int) -> Path:
    """The test split of a world made by the real `videollm data synth` command (one training video)."""
    from videollm.data.cli import main

    argv = [
        "--out",
        str(out),
        "--num-videos",
        "1",
        "--num-test-videos",
        str(num_test_videos),
        "--seed",
        str(seed),
    ]
    assert main(["synth", *argv]) == 0
    return out / "test"


def save_tiny_base(out: Path, **overrides: Any) -> Path:
    """A tiny VideoLLM checkpoint (and processor) on disk, what `model.base` points at in tests."""
    from videollm.model import tiny

    model, processor = tiny(**overrides)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def world_fixture(num_videos: int) -> Any:
    """A module-scoped fixture rendering one world of `num_videos` clips; assign it to `world` in a test module."""

    @pytest.fixture(scope="module")
    def world(tmp_path_factory) -> Path:
        return render_world(tmp_path_factory.mktemp("world"), num_videos=num_videos)

    return world


def base_fixture() -> Any:
    """A module-scoped fixture saving one tiny base model; assign it to `base` in a test module."""

    @pytest.fixture(scope="module")
    def base(tmp_path_factory) -> Path:
        return save_tiny_base(tmp_path_factory.mktemp("base"))

    return base


def subset(src: Path, dst: Path, keep: int, where: Any = None) -> Path:
    """The first `keep` records of a LLaVA JSON file (that pass `where`), with media paths made absolute."""
    records = json.loads(src.read_text())
    chosen = [r for r in records if where is None or where(r)][:keep]
    for r in chosen:
        for key in ("video", "image"):
            if key in r:
                r[key] = str(src.parent / r[key])
    dst.write_text(json.dumps(chosen))
    return dst


def recipe(world: Path, base: Path, out: Path, **fields: Any) -> dict:
    """A small recipe dict on the world's instruct + align files (overridable field by field)."""
    tree = {
        "name": "test",
        "model": {"base": str(base)},
        "strategy": "frozen",
        "data": {
            "files": [
                {"path": str(world / "train" / "instruct.json"), "weight": 0.1},
                {"path": str(world / "train" / "align.json"), "weight": 0.2},
            ]
        },
        "frames": {"num_frames": 4},
        "batch_size": 2,
        "lr": 1e-3,
        "warmup_ratio": 0.0,
        "max_steps": 3,
        "save_steps": 100,
        "log_steps": 1,
        "max_length": 1024,
        "output_dir": str(out),
    }
    for key, value in fields.items():
        node = tree
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return tree


def write_recipe(path: Path, tree: dict) -> Path:
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def short_run(world: Path, base: Path, out: Path, **fields: Any) -> Any:
    """A real training run of `recipe(...)`: 2 frames a video and 3 steps unless `fields` say otherwise."""
    from videollm.train.recipe import recipe_from_dict
    from videollm.train.trainer import train

    return train(
        recipe_from_dict(recipe(world, base, out, **{"frames.num_frames": 2, "max_steps": 3, **fields}))
    )


def load_model(path: Path) -> Any:
    """A saved VideoLLM checkpoint (a base or a run's output) in fp32."""
    import torch

    from videollm.model import VideoLLMForConditionalGeneration

    return VideoLLMForConditionalGeneration.from_pretrained(path, dtype=torch.float32)


def weights(model: Any) -> dict[str, Any]:
    """Copies of every parameter, by name: what a run is compared against."""
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def changed_names(before: dict, after: dict) -> set[str]:
    """Names of the parameters present in both that are not bit-identical."""
    import torch

    return {n for n, p in after.items() if n in before and not torch.equal(before[n], p)}


@dataclass
class RunDiff:
    """What a short run did to its base: the run's result, the saved model, its parameters before and after."""

    result: Any
    model: Any
    before: dict[str, Any]
    after: dict[str, Any]

    @property
    def added(self) -> set[str]:
        """Parameters the run's model has and the base had not (adapters, prompts, side networks)."""
        return {n for n in self.after if n not in self.before}

    @property
    def changed(self) -> set[str]:
        return changed_names(self.before, self.after)


def run_diff(world: Path, base: Path, out: Path, **fields: Any) -> RunDiff:
    """`short_run(...)`, its saved model reloaded, and the base's parameters to compare it with."""
    before = weights(load_model(base))
    result = short_run(world, base, out, **fields)
    model = load_model(out)
    return RunDiff(result, model, before, weights(model))


def stock_processor(num_image_tokens: int = 16, size: int = 32) -> Any:
    """transformers' own LlavaOnevisionProcessor around the tiny tokenizer (PIL image processor, no downloads)."""
    from transformers import LlavaOnevisionProcessor
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil,
    )
    from transformers.models.llava_onevision.video_processing_llava_onevision import (
        LlavaOnevisionVideoProcessor,
    )

    from videollm.model import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    return LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessorPil(
            size={"height": size, "width": size}, image_grid_pinpoints=[[size, size]], crop_size=size
        ),
        tokenizer=tokenizer,
        video_processor=LlavaOnevisionVideoProcessor(size={"height": size, "width": size}),
        num_image_tokens=num_image_tokens,
        vision_feature_select_strategy="full",
        chat_template=tokenizer.chat_template,
    )
