"""`VideoLLMForConditionalGeneration` for vLLM: its LLaVA-OneVision model with videollm's video path.

vLLM's `LlavaOnevisionForConditionalGeneration` is kept whole (vision tower, projector, LM, image
path, weight loading, paged attention); two things change, the two that the connector decides:

- how many tokens a video takes (`VideoLLMProcessingInfo.get_num_video_tokens` →
  `videollm.model.tokens.video_num_tokens`, plus the time instruction's text tokens when the
  config asks for one), and
- how frames become those tokens (`_process_video_pixels`): vLLM's vision tower, then exactly
  the transformers model's `video_tokens` (connector before/after the projector, newlines), so
  both engines compute the same thing from the same frames.

Frames reach the processor with their timestamps (from `vllm_video`'s metadata), so temporal
connectors and the time instruction see seconds, as in transformers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from transformers import BatchFeature
from vllm.config import VllmConfig
from vllm.model_executor.models.llava_onevision import (
    LlavaOnevisionDummyInputsBuilder,
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionMultiModalProcessor,
    LlavaOnevisionProcessingInfo,
    LlavaOnevisionVideoPixelInputs,
)
from vllm.model_executor.models.utils import WeightsMapper
from vllm.multimodal import MULTIMODAL_REGISTRY
from vllm.multimodal.inputs import MultiModalFieldConfig, MultiModalKwargsItems
from vllm.multimodal.parse import MultiModalDataItems, VideoEmbeddingItems, VideoProcessorItems
from vllm.multimodal.processing import PromptReplacement, PromptUpdate, PromptUpdateDetails

from videollm.inference.media import MediaPolicy
from videollm.inference.vllm_video import video_from_metadata
from videollm.inference.vllm_video_modules import add_video_modules, encode_video, has_video_modules
from videollm.model.config import VideoLLMConfig
from videollm.model.connectors import ConnectorConfig, build_connector
from videollm.model.modeling import VideoLLMModel
from videollm.model.processor import VideoLLMProcessor, time_instruction
from videollm.model.tokens import video_num_tokens
from videollm.video.types import Video


def _as_video(frames: Any, metadata: dict | None) -> Video:
    """Frames as a `Video` with timestamps: from the loader's metadata, else one frame per second."""
    video = video_from_metadata(np.asarray(frames), metadata)
    if isinstance(video, Video):
        return video
    frames = np.ascontiguousarray(np.asarray(video), dtype=np.uint8)
    t = np.arange(len(frames))
    return Video(
        frames=frames,
        timestamps=t.astype(np.float64),
        indices=t,
        fps=1.0,
        duration=float(len(frames)),
        num_source_frames=len(frames),
        backend="array",
    )


class VideoLLMProcessingInfo(LlavaOnevisionProcessingInfo):
    def get_hf_config(self) -> VideoLLMConfig:
        return self.ctx.get_hf_config(VideoLLMConfig)

    def get_hf_processor(self, **kwargs: object) -> VideoLLMProcessor:
        return self.ctx.get_hf_processor(VideoLLMProcessor, **kwargs)

    def get_num_video_tokens(self, *, image_width: int, image_height: int, num_frames: int) -> int:
        # Frames are resized to the tower's square input, so only the frame count matters.
        return video_num_tokens(self.get_hf_config(), num_frames)

    def _get_max_video_frames(self, max_tokens: int) -> int:
        """Most frames whose tokens fit `max_tokens` (for vLLM's profiling run), by bisection up to the frame limit.

        vLLM's version counts up until the tokens overflow, which never happens for connectors with a
        fixed budget (pool3d, resampler, token_merge): it would loop forever.
        """
        lo, hi = 0, MediaPolicy.from_env().limits.max_frames
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.get_num_video_tokens(image_width=0, image_height=0, num_frames=mid) <= max_tokens:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def time_instruction_ids(self, video: Video) -> list[int]:
        """Token ids of the text the processor puts after a video's placeholders (empty when off)."""
        if not self.get_hf_config().time_instruction:
            return []
        text = "\n" + time_instruction(video.timestamps, video.duration)
        return self.get_tokenizer().encode(text, add_special_tokens=False)


class VideoLLMMultiModalProcessor(LlavaOnevisionMultiModalProcessor):
    def _get_mm_fields_config(
        self, hf_inputs: BatchFeature, hf_processor_mm_kwargs: Mapping[str, object]
    ) -> Mapping[str, MultiModalFieldConfig]:
        fields = dict(super()._get_mm_fields_config(hf_inputs, hf_processor_mm_kwargs))
        fields["video_timestamps"] = MultiModalFieldConfig.batched("video")
        return fields

    def _videos(self, mm_items: MultiModalDataItems) -> list[Video]:
        items = mm_items.get_items("video", VideoProcessorItems)
        metadata = items.metadata if isinstance(items.metadata, list) else [items.metadata] * len(items)
        return [_as_video(items.get(i), metadata[i]) for i in range(len(items))]

    def _apply_hf_processor_main(
        self, mm_items: MultiModalDataItems, hf_kwargs: Mapping[str, object]
    ) -> BatchFeature:
        if "video" not in mm_items or not isinstance(mm_items["video"], VideoProcessorItems):
            return super()._apply_hf_processor_main(mm_items, hf_kwargs)
        hf_data, hf_kwargs, passthrough = self._get_hf_mm_inputs(mm_items, hf_kwargs)
        prompt_text = hf_data.pop("text")
        hf_data.pop("videos", None)
        processor = self.info.get_hf_processor(**hf_kwargs)
        outputs: dict[str, Any] = {"input_ids": prompt_text}
        images = hf_data.pop("images", [])
        if images:
            image_out = self.info.ctx.call_hf_processor(
                processor, {"text": processor.image_token * len(images), "images": images}, hf_kwargs
            )
            outputs.update({k: v for k, v in image_out.items() if k in ("pixel_values", "image_sizes")})
        # One call per video (frame counts may differ), each with its timestamps, as in transformers.
        pixels, stamps = [], []
        for video in self._videos(mm_items):
            out = self.info.ctx.call_hf_processor(
                processor, {"text": processor.video_token, "videos": [video]}, hf_kwargs
            )
            pixels.append(out["pixel_values_videos"][0])
            if "video_timestamps" in out:
                stamps.append(out["video_timestamps"][0])
        outputs["pixel_values_videos"] = pixels
        if stamps:
            outputs["video_timestamps"] = stamps
        return self._finalize_hf_mm_data(hf_data, hf_kwargs, passthrough, BatchFeature(outputs))

    def _get_prompt_updates(
        self,
        mm_items: MultiModalDataItems,
        hf_processor_mm_kwargs: Mapping[str, object],
        out_mm_kwargs: MultiModalKwargsItems,
    ) -> Sequence[PromptUpdate]:
        updates = [
            u
            for u in super()._get_prompt_updates(mm_items, hf_processor_mm_kwargs, out_mm_kwargs)
            if u.modality != "video"
        ]
        video_token_id = self.info.get_hf_config().video_token_index

        def video_replacement(item_idx: int) -> PromptUpdateDetails | list[int]:
            videos = mm_items.get_items("video", (VideoEmbeddingItems, VideoProcessorItems))
            if isinstance(videos, VideoEmbeddingItems):
                return [video_token_id] * videos.get_feature_size(item_idx)
            video = self._videos(mm_items)[item_idx]
            run = [video_token_id] * self.info.get_num_video_tokens(
                image_width=0, image_height=0, num_frames=video.num_frames
            )
            extra = self.info.time_instruction_ids(video)
            if not extra:
                return run
            return PromptUpdateDetails.select_token_id(run + extra, video_token_id)

        return [
            *updates,
            PromptReplacement(modality="video", target=[video_token_id], replacement=video_replacement),
        ]


@MULTIMODAL_REGISTRY.register_processor(
    VideoLLMMultiModalProcessor, info=VideoLLMProcessingInfo, dummy_inputs=LlavaOnevisionDummyInputsBuilder
)
class VideoLLMForConditionalGeneration(LlavaOnevisionForConditionalGeneration):
    """vLLM's LLaVA-OneVision with the videollm connector on the video path."""

    hf_to_vllm_mapper = WeightsMapper(
        orig_to_new_prefix={
            **LlavaOnevisionForConditionalGeneration.hf_to_vllm_mapper.orig_to_new_prefix,
            "model.connector.": "connector.",
            "model.side.": "side.",
        }
    )

    def __init__(self, *, vllm_config: VllmConfig, prefix: str = "") -> None:
        super().__init__(vllm_config=vllm_config, prefix=prefix)
        config: VideoLLMConfig = self.config
        try:  # temporal adapters into vLLM's tower, and the side network (vllm_video_modules)
            add_video_modules(self, config)
        except ValueError as e:
            raise ValueError(f"{vllm_config.model_config.model}: {e}") from None
        layers = config.vision_feature_layer
        vision_dim = config.vision_config.hidden_size * (1 if isinstance(layers, int) else len(layers))
        self.connector = build_connector(
            ConnectorConfig.from_dict(config.connector), vision_dim, config.text_config.hidden_size
        )

    def _parse_and_validate_video_input(self, **kwargs: object) -> LlavaOnevisionVideoPixelInputs | None:
        self._video_timestamps = kwargs.pop("video_timestamps", None)
        return super()._parse_and_validate_video_input(**kwargs)

    def _process_video_pixels(self, inputs: LlavaOnevisionVideoPixelInputs) -> list[torch.Tensor]:
        videos = inputs["pixel_values_videos"]
        videos = list(videos) if isinstance(videos, torch.Tensor) else videos
        stamps = self._video_timestamps
        stamps = [None] * len(videos) if stamps is None else list(stamps)
        frames = [len(v) for v in videos]
        if has_video_modules(self.config):  # adapters/side see one video's frames at a time
            features = torch.cat([encode_video(self, v) for v in videos])
        else:
            features = self.vision_tower(
                torch.cat(videos), feature_select_strategy=self.config.vision_feature_select_strategy
            )
        # The transformers model's own step (connector + projector + newlines), on vLLM's modules.
        return [
            VideoLLMModel.video_tokens(self, clip, None if t is None else t.to(clip.device))
            for clip, t in zip(torch.split(features, frames), stamps, strict=True)
        ]

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        return super().load_weights(weights)
