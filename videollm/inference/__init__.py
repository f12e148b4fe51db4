"""Engines shared by serving and evaluation: vLLM (with videollm's plugin) and transformers.

Kept import-light: the engines, vLLM and torch are imported by the modules that need them.
"""

from __future__ import annotations

import os

MODEL_ENV = "VIDEOLLM_MODEL"


def default_model() -> str:
    """The model commands use when no `--model` is given: `$VIDEOLLM_MODEL`, else the starter model.

    The starter (videollm/starter/, trained by the project's own recipe on the synthetic world) is
    assembled into the cache on first use from the parts shipped in the package: no network.
    """
    if os.environ.get(MODEL_ENV):
        return os.environ[MODEL_ENV]
    from videollm.starter import default_model as starter

    return starter()
