"""Shared fixtures: tiny VideoLLMs (built once per session) and random test clips."""

from __future__ import annotations

import json

import numpy as np
import pytest

_built: dict[str, tuple] = {}


@pytest.fixture(scope="session")
def tiny_model():
    """`tiny_model(connector="spatial_pool", vision="clip", lm="llama", **overrides)` → (model, processor), cached.

    The same arguments give the same objects for the whole session: do not train or modify them in place
    (build a fresh one with `videollm.model.tiny` for that).
    """

    def get(
        connector: str | dict | None = "spatial_pool", vision: str = "clip", lm: str = "llama", **overrides
    ):
        from videollm.model import tiny

        key = json.dumps([connector, vision, lm, overrides], sort_keys=True)
        if key not in _built:
            _built[key] = tiny(connector, vision, lm, **overrides)
        return _built[key]

    return get


@pytest.fixture(scope="session")
def onevision_tiny(tiny_model):
    """The default (LLaVA-OneVision) tiny model: SigLIP + Qwen2, as LLaVA-OneVision itself."""
    return tiny_model("spatial_pool", "siglip", "qwen2")


def random_clip(frames: int = 4, height: int = 40, width: int = 48, seed: int = 0) -> np.ndarray:
    """uint8 T×H×W×3 noise: every frame differs, sizes are not the tower's, so resizing is exercised."""
    return np.random.default_rng(seed).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
