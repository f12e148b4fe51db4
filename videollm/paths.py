"""Where videollm keeps what it makes for you: one cache root, overridable for CI and shared machines."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """`$VIDEOLLM_CACHE` (default `~/.cache/videollm`) joined with `parts`, created on demand."""
    root = Path(os.environ.get("VIDEOLLM_CACHE") or Path.home() / ".cache" / "videollm")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
