"""Register videollm with transformers' Auto* factories, without importing transformers.

After `import videollm`, `AutoConfig`, `AutoModel`, `AutoModelForImageTextToText` and `AutoProcessor`
must know model_type "videollm" — but importing transformers (and torch) costs seconds, which
`import videollm` must not pay. So `register()` only installs an import hook: right after each of
transformers' auto modules finishes importing, the videollm classes it maps are registered (the
config with `configuration_auto`, the models with `modeling_auto`, the processor with
`processing_auto`). Auto modules already imported are served at once.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Callable
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

MODEL_TYPE = "videollm"


def _register_config() -> None:
    from transformers import AutoConfig

    from videollm.model.config import VideoLLMConfig

    AutoConfig.register(MODEL_TYPE, VideoLLMConfig, exist_ok=True)


def _register_models() -> None:
    from transformers import AutoModel, AutoModelForImageTextToText

    from videollm.model.config import VideoLLMConfig
    from videollm.model.modeling import VideoLLMForConditionalGeneration, VideoLLMModel

    AutoModel.register(VideoLLMConfig, VideoLLMModel, exist_ok=True)
    AutoModelForImageTextToText.register(VideoLLMConfig, VideoLLMForConditionalGeneration, exist_ok=True)


def _register_processor() -> None:
    from transformers import AutoProcessor

    from videollm.model.config import VideoLLMConfig
    from videollm.model.processor import VideoLLMProcessor

    AutoProcessor.register(VideoLLMConfig, VideoLLMProcessor, exist_ok=True)


# In dependency order: a later module's registration uses the earlier ones' classes.
REGISTRATIONS: dict[str, Callable[[], None]] = {
    "transformers.models.auto.configuration_auto": _register_config,
    "transformers.models.auto.modeling_auto": _register_models,
    "transformers.models.auto.processing_auto": _register_processor,
}
_pending: dict[str, Callable[[], None]] = {}


def _fire(name: str) -> None:
    callback = _pending.pop(name, None)
    if callback is not None:
        callback()


class _RegisteringLoader(importlib.abc.Loader):
    """Runs the wrapped loader, then the registration waiting for that module."""

    def __init__(self, loader: importlib.abc.Loader, name: str):
        self.loader = loader
        self.name = name

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        _fire(self.name)

    def __getattr__(self, attr: str) -> Any:  # get_source, get_resource_reader, ...
        return getattr(self.loader, attr)


class _AfterImportHook(importlib.abc.MetaPathFinder):
    """Finds transformers' auto modules with the other finders and wraps their loaders."""

    def find_spec(self, name: str, path: Any = None, target: ModuleType | None = None) -> ModuleSpec | None:
        if name not in _pending:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _RegisteringLoader(spec.loader, name)
                return spec
        return None


def register() -> None:
    """Make transformers' Auto* classes load videollm checkpoints (cheap: imports nothing heavy)."""
    for name, callback in REGISTRATIONS.items():
        if name not in sys.modules:
            _pending.setdefault(name, callback)
    if _pending and not any(isinstance(f, _AfterImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImportHook())
    for name, callback in REGISTRATIONS.items():
        if name in sys.modules and name not in _pending:
            callback()


__all__ = ["MODEL_TYPE", "register"]
