"""videollm: image-language models turned into video assistants.

Importing the package registers the videollm model classes with transformers' Auto* factories
(lazily, on first use of `videollm.model`), so `AutoModelForImageTextToText.from_pretrained`
loads videollm checkpoints.
"""

from __future__ import annotations

__version__ = "0.1.0"

from videollm import _compat  # noqa: F401  (environment fix-ups that must run before torch users)


def _register_auto_classes() -> None:
    try:
        from videollm.model import registration
    except ImportError:  # model package not importable (partial install): video/data still work
        return
    registration.register()


_register_auto_classes()
