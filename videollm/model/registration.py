"""Register videollm with transformers' Auto* factories, without importing transformers.

After `import videollm`, `AutoConfig`, `AutoModel`, `AutoModelForImageTextToText` and `AutoProcessor`
must know model_type "videollm"; but `import videollm` must not pay for importing transformers and
torch (seconds). transformers' public `Auto*.register` wants the classes themselves, and they cannot
be imported while transformers is still half-imported (its class decorators read `modeling_auto`).

So when transformers is not imported yet, `register()` installs an import hook that adds videollm
to the auto mappings *by name*, the way transformers lists its own models: right after
`configuration_auto` runs (config and processor names) and after `modeling_auto` runs (model names),
with `transformers.models.videollm` pointing at `videollm.model`, whose names import on first use.
Nothing of videollm's is imported until an Auto* class actually looks it up. When transformers'
auto modules are already imported, the classes are registered with the public API at once.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Callable
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

MODEL_TYPE = "videollm"
AUTO = "transformers.models.auto"
ALIAS = f"transformers.models.{MODEL_TYPE}"  # where transformers' lazy mappings import model types from


def _config_names(configuration_auto: ModuleType) -> None:
    configuration_auto.CONFIG_MAPPING_NAMES[MODEL_TYPE] = "VideoLLMConfig"
    sys.modules[f"{AUTO}.auto_mappings"].PROCESSOR_MAPPING_NAMES[MODEL_TYPE] = "VideoLLMProcessor"
    sys.modules.setdefault(ALIAS, importlib.import_module("videollm.model"))


def _model_names(modeling_auto: ModuleType) -> None:
    modeling_auto.MODEL_MAPPING_NAMES[MODEL_TYPE] = "VideoLLMModel"
    modeling_auto.MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES[MODEL_TYPE] = "VideoLLMForConditionalGeneration"


# Run right after these modules execute (configuration_auto always runs before modeling_auto's body).
HOOKS: dict[str, Callable[[ModuleType], None]] = {
    f"{AUTO}.configuration_auto": _config_names,
    f"{AUTO}.modeling_auto": _model_names,
}


def register_classes() -> None:
    """Register the classes with transformers' public API (imports them: for an already-imported transformers)."""
    from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

    from videollm.model.config import VideoLLMConfig
    from videollm.model.modeling import VideoLLMForConditionalGeneration, VideoLLMModel
    from videollm.model.processor import VideoLLMProcessor

    AutoConfig.register(MODEL_TYPE, VideoLLMConfig, exist_ok=True)
    AutoModel.register(VideoLLMConfig, VideoLLMModel, exist_ok=True)
    AutoModelForImageTextToText.register(VideoLLMConfig, VideoLLMForConditionalGeneration, exist_ok=True)
    AutoProcessor.register(VideoLLMConfig, VideoLLMProcessor, exist_ok=True)


class _NamingLoader(importlib.abc.Loader):
    """Runs transformers' loader for an auto module, then adds videollm's names to it."""

    def __init__(self, loader: importlib.abc.Loader, hook: Callable[[ModuleType], None]):
        self.loader = loader
        self.hook = hook

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        self.hook(module)

    def __getattr__(self, attr: str) -> Any:  # get_source, get_resource_reader, ...
        return getattr(self.loader, attr)


class _AutoMappingsHook(importlib.abc.MetaPathFinder):
    """Finds transformers' auto modules with the other finders and wraps their loaders (each once)."""

    def __init__(self) -> None:
        self.pending = dict(HOOKS)

    def find_spec(self, name: str, path: Any = None, target: ModuleType | None = None) -> ModuleSpec | None:
        hook = self.pending.pop(name, None)
        if hook is None:
            return None
        if not self.pending:
            sys.meta_path.remove(self)
        for finder in sys.meta_path:
            spec = (
                finder.find_spec(name, path, target)
                if finder is not self and hasattr(finder, "find_spec")
                else None
            )
            if spec is not None and spec.loader is not None:
                spec.loader = _NamingLoader(spec.loader, hook)
                return spec
        return None


def register() -> None:
    """Make transformers' Auto* classes load videollm checkpoints (imports nothing heavy if transformers isn't)."""
    if any(name in sys.modules for name in HOOKS):
        register_classes()
    elif not any(isinstance(f, _AutoMappingsHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _AutoMappingsHook())


__all__ = ["MODEL_TYPE", "register", "register_classes"]
