"""Engines shared by serving and evaluation: vLLM (with videollm's plugin) and transformers.

Kept import-light: the engines, vLLM and torch are imported by the modules that need them.
"""

from __future__ import annotations

import os

MODEL_ENV = "VIDEOLLM_MODEL"


def default_model() -> str:
    """The model commands use when no `--model` is given: `$VIDEOLLM_MODEL`, else the starter model.

    The starter model (trained by the project's own recipe on the synthetic world) arrives with its
    own issue; until then this names the fix.
    """
    if os.environ.get(MODEL_ENV):
        return os.environ[MODEL_ENV]
    raise SystemExit(
        "no model given and the starter model is not installed yet; pass --model PATH_OR_HUB_ID "
        f"(a videollm or LLaVA-OneVision checkpoint) or set {MODEL_ENV}"
    )
