"""`VideoLLMConfig`: LLaVA-OneVision's config plus how an image model is carried to video.

The added fields are exactly the image-to-video choices: the `connector` (video-token strategy),
where newline tokens go, the optional time instruction, the modified-feature modules
(`adapter`, `prompt`, `side`) and the default number of frames. With the OneVision choices (default
connector, one newline after the video, nothing else) the config *is* a LLaVA-OneVision config
and saves as one, so stock transformers and vLLM load the checkpoint.
"""

from __future__ import annotations

import os
from typing import Any

from huggingface_hub.dataclasses import strict
from transformers.models.llava_onevision.configuration_llava_onevision import LlavaOnevisionConfig

from videollm.model.connectors import DEFAULT, ConnectorConfig
from videollm.model.tokens import NEWLINES, onevision_tokens

# What the classes are called in a stock LLaVA-OneVision checkpoint.
ONEVISION_ARCHITECTURES = {
    "VideoLLMForConditionalGeneration": "LlavaOnevisionForConditionalGeneration",
    "VideoLLMModel": "LlavaOnevisionModel",
}
VIDEOLLM_FIELDS = ("connector", "newline", "time_instruction", "adapter", "prompt", "side")
# Vision towers that put a class token before the patch grid.
CLS_TOWERS = ("clip_vision_model",)


@strict
class VideoLLMConfig(LlavaOnevisionConfig):
    r"""
    connector (`dict`, *optional*):
        The video-token strategy, a `videollm.model.connectors.ConnectorConfig` as a dict. Defaults to
        LLaVA-OneVision's: bilinear pooling of each frame to half resolution after the projector.
    newline (`str`, *optional*, defaults to `"video"`):
        Where `image_newline` tokens go: `"video"` one after the video (LLaVA-OneVision), `"frame"` one
        after each frame's tokens, `"none"` (LLaVA-NeXT-Video).
    time_instruction (`bool`, *optional*, defaults to `False`):
        Whether the processor states the video's duration and frame times after the video (LLaVA-Video).
    adapter (`dict`, *optional*):
        Temporal adapters in the vision encoder (`videollm.model.adapters.AdapterConfig` as a dict).
    prompt (`dict`, *optional*):
        Learnable visual prompt tokens in the vision encoder (`videollm.model.adapters.PromptConfig`).
    side (`dict`, *optional*):
        A ladder side network on the frozen encoder's hidden states (`videollm.model.side.SideConfig`).
    num_frames (`int`, *optional*, defaults to 8):
        Frames sampled per video when the caller does not say.
    """

    model_type = "videollm"

    connector: dict | None = None
    newline: str = "video"
    time_instruction: bool = False
    adapter: dict | None = None
    prompt: dict | None = None
    side: dict | None = None
    num_frames: int = 8

    def __post_init__(self, **kwargs):
        # Normalised through ConnectorConfig so equal strategies compare equal and typos fail here.
        self.connector = ConnectorConfig.from_dict(self.connector or DEFAULT).to_dict()
        super().__post_init__(**kwargs)
        if self.newline not in NEWLINES:
            raise ValueError(
                f"newline={self.newline!r} is invalid; use 'video' (one after the video, LLaVA-OneVision), "
                "'frame' (one after each frame) or 'none' (LLaVA-NeXT-Video)"
            )
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        vision = self.vision_config
        if vision.model_type in CLS_TOWERS and self.vision_feature_select_strategy == "full":
            raise ValueError(
                f"{vision.model_type} puts a class token before the patch grid, which video connectors "
                "cannot pool; set vision_feature_select_strategy='default' (drops it, as LLaVA does)"
            )

    @property
    def is_onevision(self) -> bool:
        """True when the model is exactly LLaVA-OneVision (then it saves as a stock OneVision checkpoint)."""
        return (
            onevision_tokens(self.connector, self.newline, self.time_instruction)
            and self.adapter is None
            and self.prompt is None
            and self.side is None
        )

    def to_onevision(self) -> LlavaOnevisionConfig:
        """The stock LlavaOnevisionConfig of an `is_onevision` config (`num_frames` kept as an extra)."""
        if not self.is_onevision:
            raise ValueError(
                f"connector {self.connector}, newline {self.newline!r}, time_instruction "
                f"{self.time_instruction}, adapter {self.adapter}, prompt {self.prompt}, side {self.side} is not LLaVA-OneVision"
            )
        d = self.to_dict()
        for key in (*VIDEOLLM_FIELDS, "model_type", "transformers_version"):
            d.pop(key, None)
        if d.get("architectures"):
            d["architectures"] = [ONEVISION_ARCHITECTURES.get(a, a) for a in d["architectures"]]
        return LlavaOnevisionConfig(**d)

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs):
        """Write config.json; as `llava_onevision` when the model is exactly LLaVA-OneVision."""
        if self.is_onevision:
            return self.to_onevision().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)
        return super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)

    @classmethod
    def get_config_dict(
        cls, pretrained_model_name_or_path, **kwargs
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Read a videollm config or a LLaVA-OneVision one (the default-connector format)."""
        config_dict, kwargs = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        model_type = config_dict.get("model_type")
        if model_type == "llava_onevision":
            config_dict = {**config_dict, "model_type": cls.model_type}
        elif model_type not in (None, cls.model_type):
            raise ValueError(
                f"{pretrained_model_name_or_path} is a {model_type!r} checkpoint, not a videollm or "
                "LLaVA-OneVision one; turn it into a video model with "
                f"videollm.model.from_image_llm({str(pretrained_model_name_or_path)!r})"
            )
        return config_dict, kwargs


__all__ = ["VideoLLMConfig"]
