"""VideoLLM: config, connectors, modeling, processor and builders (LLaVA-OneVision's triad, for video).

Names are imported on first use, so `import videollm.model` (and `import videollm`) stays free of
torch and transformers until a model is actually needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "VideoLLMConfig": "videollm.model.config",
    "VideoLLMForConditionalGeneration": "videollm.model.modeling",
    "VideoLLMModel": "videollm.model.modeling",
    "VideoLLMProcessor": "videollm.model.processor",
    "FrameTransform": "videollm.model.frames",
    "ConnectorConfig": "videollm.model.connectors",
    "build_processor": "videollm.model.builders",
    "from_image_llm": "videollm.model.builders",
    "tiny": "videollm.model.builders",
    "tiny_tokenizer": "videollm.model.tokenizer",
    "video_num_tokens": "videollm.model.tokens",
}

if TYPE_CHECKING:
    from videollm.model.builders import build_processor, from_image_llm, tiny
    from videollm.model.config import VideoLLMConfig
    from videollm.model.connectors import ConnectorConfig
    from videollm.model.frames import FrameTransform
    from videollm.model.modeling import VideoLLMForConditionalGeneration, VideoLLMModel
    from videollm.model.processor import VideoLLMProcessor
    from videollm.model.tokenizer import tiny_tokenizer
    from videollm.model.tokens import video_num_tokens


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'videollm.model' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "ConnectorConfig",
    "FrameTransform",
    "VideoLLMConfig",
    "VideoLLMForConditionalGeneration",
    "VideoLLMModel",
    "VideoLLMProcessor",
    "build_processor",
    "from_image_llm",
    "tiny",
    "tiny_tokenizer",
    "video_num_tokens",
]
