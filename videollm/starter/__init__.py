"""The starter model: SmolLM2-135M-Instruct taught to see the synthetic world, the offline default.

Only the trained parts ship (`assets/`); `starter_dir()` assembles the full checkpoint in the cache
on first use. `default_model()` is what serve / chat / eval call when no --model is given.
Kept import-light: torch and transformers load on the first call.
"""

from __future__ import annotations

from pathlib import Path


def default_model() -> str:
    """The starter's assembled checkpoint folder (assembled on first use, with a progress line on stderr)."""
    from videollm.starter.model import default_model as _default_model

    return _default_model()


def starter_dir() -> Path:
    from videollm.starter.model import starter_dir as _starter_dir

    return _starter_dir()


__all__ = ["default_model", "starter_dir"]
