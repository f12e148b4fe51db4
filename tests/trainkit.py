"""Shared material for the data and training tests: a small synthetic world, a tiny saved base model,
recipes written to disk, and the tiny stock LLaVA-OneVision processor.

Plain functions (import them; wrap in fixtures where a module needs caching).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]


def render_world(out: Path, num_videos: int = 6, frames: int = 8, size: int = 32, seed: int = 0) -> Path:
    """A synthetic world (train + test splits of real H.264 clips, PNG frames, LLaVA JSON) under `out`."""
    from videollm.data.synthetic import render_world as render

    render(out, num_videos=num_videos, seed=seed, frames=frames, size=size, num_test_videos=2)
    return out


def save_tiny_base(out: Path, **overrides: Any) -> Path:
    """A tiny VideoLLM checkpoint (and processor) on disk, what `model.base` points at in tests."""
    from videollm.model import tiny

    model, processor = tiny(**overrides)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


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
