"""`VideoLLMForConditionalGeneration`: LLaVA-OneVision with the video path as a configuration choice.

Only the video path is overridden (`get_video_features`): frames go through the vision tower as one
image batch inside `adapters.frames_per_video` (so temporal adapters can fold it back into clips),
features are selected as OneVision selects them, the `connector` turns one video's T×h×w grid into
its tokens before or after the projector, and newlines are appended as `config.newline` says. With a
`side` network (ladder side-tuning, `videollm.model.side`) its output is added to the selected
features first.
Images, the language model, `generate` and the weight layout are OneVision's, so with the default
connector the model computes exactly what `LlavaOnevisionForConditionalGeneration` computes.
"""

from __future__ import annotations

import math
import os

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.llava_onevision.modeling_llava_onevision import (
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionModel,
    LlavaOnevisionPreTrainedModel,
)
from transformers.utils.generic import can_return_tuple, merge_with_config_defaults

from videollm.model import checkpoint
from videollm.model.adapters import (
    TEMPORAL_ADAPTERS,
    VisualPrompt,
    apply_adapters,
    frames_per_video,
)
from videollm.model.config import VideoLLMConfig
from videollm.model.connectors import Connector, ConnectorConfig, build_connector
from videollm.model.side import SideNetwork, build_side
from videollm.model.tokens import frame_grid, video_num_tokens

# Modules that initialise themselves (`reset_parameters`, with transformers' init functions, which
# skip tensors loaded from a checkpoint). Adapters live inside the vision tower, whose own
# `_init_weights` would give them a generic init, so they are reset after it; so is the side
# network, whose torch layers (Linear, MultiheadAttention) the generic init also reaches.
SELF_INITIALISED = (Connector, *TEMPORAL_ADAPTERS, VisualPrompt, SideNetwork)


class VideoLLMPreTrainedModel(LlavaOnevisionPreTrainedModel):
    config: VideoLLMConfig
    config_class = VideoLLMConfig

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, SELF_INITIALISED):
            module.reset_parameters()
            return
        super()._init_weights(module)

    def initialize_weights(self) -> None:
        super().initialize_weights()
        from transformers import initialization as init

        with torch.no_grad(), init.guard_torch_init_functions():
            for module in self.modules():
                if isinstance(module, (*TEMPORAL_ADAPTERS, VisualPrompt, SideNetwork)):
                    module.reset_parameters()


class VideoLLMModel(VideoLLMPreTrainedModel, LlavaOnevisionModel):
    """OneVision's model (vision tower, projector, newline, LM) plus a connector and optional adapters."""

    def __init__(self, config: VideoLLMConfig):
        super().__init__(config)
        layers = config.vision_feature_layer
        vision_dim = config.vision_config.hidden_size * (1 if isinstance(layers, int) else len(layers))
        self.connector = build_connector(
            ConnectorConfig.from_dict(config.connector), vision_dim, config.text_config.hidden_size
        )
        apply_adapters(self.vision_tower, config.adapter, config.prompt)
        self.side = (
            None
            if config.side is None
            else build_side(config.side, config.vision_config, layers, frame_grid(config.vision_config))
        )
        self.post_init()  # OneVision's ran before the connector and adapters existed

    @merge_with_config_defaults
    @can_return_tuple
    def get_video_features(
        self,
        pixel_values_videos: torch.FloatTensor | list[torch.FloatTensor],
        vision_feature_layer: int | list[int] | None = None,
        vision_feature_select_strategy: str | None = None,
        video_timestamps: torch.Tensor | list[torch.Tensor] | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling:
        r"""
        pixel_values_videos (`torch.FloatTensor` of shape `(batch_size, num_frames, channels, height, width)`, or a
            list of `(num_frames_i, channels, height, width)` tensors for videos of different lengths):
            The frames of each video.
        video_timestamps (`torch.Tensor` of shape `(batch_size, num_frames)` or a list, *optional*):
            Seconds of each frame, for connectors with a temporal embedding.

        Returns the vision tower's output with `pooler_output` holding the video tokens: `(batch_size, N, dim)`
        when all videos have the same number of frames, else `(1, sum N_i, dim)` (the videos one after another).
        """
        if isinstance(pixel_values_videos, torch.Tensor):
            if pixel_values_videos.ndim != 5:
                raise ValueError(
                    f"pixel_values_videos must be (videos, frames, 3, height, width), got {tuple(pixel_values_videos.shape)}"
                )
            batches = [pixel_values_videos]
        else:
            batches = [v[None] for v in pixel_values_videos]
        timestamps = [] if video_timestamps is None else list(video_timestamps)
        features, outputs = [], None
        for batch in batches:
            outputs = self._encode_frames(
                batch, vision_feature_layer, vision_feature_select_strategy, **kwargs
            )
            hidden = outputs.pooler_output  # (videos·frames, h·w, dim), not yet projected
            for clip in hidden.unflatten(0, batch.shape[:2]):
                stamps = timestamps[len(features)] if timestamps else None
                features.append(self.video_tokens(clip, stamps))
        same_length = len({f.shape[0] for f in features}) == 1
        outputs.pooler_output = torch.stack(features) if same_length else torch.cat(features)[None]
        return outputs

    def _encode_frames(
        self,
        videos: torch.Tensor,
        vision_feature_layer: int | list[int],
        vision_feature_select_strategy: str,
        **kwargs,
    ) -> BaseModelOutputWithPooling:
        """Vision tower on all frames of `videos` (B, T, C, H, W) as one batch; selected patch features in pooler_output."""
        num_frames = videos.shape[1]
        if num_frames < 1:
            raise ValueError(
                "a video has zero frames; check that it decodes and that the sampled range is not empty"
            )
        kwargs["output_hidden_states"] = True
        # Side-tuning's saving: a tower with nothing to train keeps no activations for backward.
        frozen = self.side is not None and not any(p.requires_grad for p in self.vision_tower.parameters())
        grad = torch.is_grad_enabled() and not frozen
        with frames_per_video(self.vision_tower, num_frames), torch.set_grad_enabled(grad):
            outputs = self.vision_tower(videos.flatten(0, 1), return_dict=True, **kwargs)
        if isinstance(vision_feature_layer, int):
            selected = outputs.hidden_states[vision_feature_layer]
        else:
            selected = torch.cat([outputs.hidden_states[i] for i in vision_feature_layer], dim=-1)
        if vision_feature_select_strategy == "default":
            selected = selected[:, 1:]
        grid_h, grid_w = frame_grid(self.config.vision_config)
        if selected.shape[1] != grid_h * grid_w:
            raise ValueError(
                f"the vision tower gives {selected.shape[1]} tokens per frame, not the {grid_h}×{grid_w} patch grid; "
                "with a class-token tower (CLIP) set vision_feature_select_strategy='default', and feed frames of "
                f"{self.config.vision_config.image_size}×{self.config.vision_config.image_size} pixels"
            )
        if self.side is not None:
            selected = selected + self.side_features(outputs.hidden_states, num_frames).to(selected.dtype)
        outputs.pooler_output = selected
        return outputs

    def side_features(self, hidden_states: tuple[torch.Tensor, ...], num_frames: int) -> torch.Tensor:
        """The side network's residual (B·T, h·w, D) from the tower's hidden states (their patch positions)."""
        n = math.prod(frame_grid(self.config.vision_config))
        return self.side([hidden_states[i][:, -n:] for i in self.side.layers], num_frames)

    def video_tokens(self, features: torch.Tensor, timestamps: torch.Tensor | None) -> torch.Tensor:
        """One video's selected features (T, h·w, D) → its LLM tokens (N, text dim), newlines included.

        Public because videollm's vLLM model calls it on vLLM's modules (`videollm.inference.vllm_model`),
        so both engines turn the same features into the same tokens.
        """
        num_frames = features.shape[0]
        grid = frame_grid(self.config.vision_config)
        if self.connector.stage == "pre":
            tokens = self.multi_modal_projector(self.connector(features.unflatten(1, grid), timestamps))
        else:
            tokens = self.connector(self.multi_modal_projector(features).unflatten(1, grid), timestamps)
        newline = self.image_newline.to(tokens.dtype)[None]
        if self.config.newline == "video":
            tokens = torch.cat([tokens, newline])
        elif self.config.newline == "frame":
            per_frame = tokens.unflatten(0, (num_frames, -1))
            tokens = torch.cat([per_frame, newline.expand(num_frames, 1, -1)], dim=1).flatten(0, 1)
        expected = video_num_tokens(self.config, num_frames)
        if tokens.shape[0] != expected:
            raise RuntimeError(
                f"connector {self.config.connector} made {tokens.shape[0]} tokens for {num_frames} frames, "
                f"but its num_tokens says {expected}: the connector and its token count disagree"
            )
        return tokens

    def get_placeholder_mask(
        self,
        input_ids: torch.LongTensor | None,
        inputs_embeds: torch.FloatTensor,
        image_features: torch.FloatTensor | None = None,
        video_features: torch.FloatTensor | None = None,
    ):
        if video_features is not None and input_ids is not None:
            placeholders = int((input_ids == self.config.video_token_id).sum())
            if placeholders != video_features.shape[0]:
                raise ValueError(
                    f"the prompt has {placeholders} video placeholder tokens but the videos make "
                    f"{video_features.shape[0]} tokens; build the inputs with VideoLLMProcessor, which expands each "
                    "<video> to video_num_tokens(config, frames), and pass one video per <video>"
                )
        return super().get_placeholder_mask(input_ids, inputs_embeds, image_features, video_features)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        image_sizes: torch.LongTensor | None = None,
        pixel_values_videos: torch.FloatTensor | None = None,
        video_timestamps: torch.Tensor | None = None,
        mm_encoder_outputs: dict | None = None,
        **kwargs,
    ):
        """OneVision's forward; the video features are computed here so they can get `video_timestamps`."""
        if pixel_values_videos is not None:
            if mm_encoder_outputs is not None:
                raise ValueError(
                    "pass either pixel_values/pixel_values_videos or mm_encoder_outputs, not both"
                )
            mm_encoder_outputs = {
                "video": self.get_video_features(
                    pixel_values_videos,
                    vision_feature_layer=kwargs.get("vision_feature_layer"),
                    vision_feature_select_strategy=kwargs.get("vision_feature_select_strategy"),
                    video_timestamps=video_timestamps,
                    return_dict=True,
                )
            }
            if pixel_values is not None:
                mm_encoder_outputs["image"] = self.get_image_features(
                    pixel_values,
                    image_sizes,
                    vision_feature_layer=kwargs.get("vision_feature_layer"),
                    vision_feature_select_strategy=kwargs.get("vision_feature_select_strategy"),
                    vision_aspect_ratio=kwargs.get("vision_aspect_ratio"),
                    batch_num_images=kwargs.get("batch_num_images"),
                    return_dict=True,
                )
            pixel_values = pixel_values_videos = None
        return super().forward(
            input_ids=input_ids,
            pixel_values=pixel_values,
            image_sizes=image_sizes,
            pixel_values_videos=pixel_values_videos,
            mm_encoder_outputs=mm_encoder_outputs,
            **kwargs,
        )


class VideoLLMForConditionalGeneration(VideoLLMPreTrainedModel, LlavaOnevisionForConditionalGeneration):
    """LLaVA-OneVision for generation, with videollm's video path. Saves as stock OneVision when it is one."""

    def __init__(self, config: VideoLLMConfig):
        super(LlavaOnevisionForConditionalGeneration, self).__init__(config)
        self.model = VideoLLMModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    def get_video_features(self, pixel_values_videos, **kwargs) -> BaseModelOutputWithPooling:
        return self.model.get_video_features(pixel_values_videos, **kwargs)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        image_sizes: torch.LongTensor | None = None,
        pixel_values_videos: torch.FloatTensor | None = None,
        image_sizes_videos: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values=None,
        inputs_embeds: torch.FloatTensor | None = None,
        vision_feature_layer: int | list[int] | None = None,
        vision_feature_select_strategy: str | None = None,
        vision_aspect_ratio: str | None = None,
        batch_num_images: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        mm_encoder_outputs: dict | None = None,
        video_timestamps: torch.Tensor | None = None,
        **kwargs,
    ):
        r"""
        OneVision's forward plus `video_timestamps` (`(videos, frames)` seconds, for connectors with a temporal
        embedding; `VideoLLMProcessor` returns them when the connector uses them).
        """
        return super().forward(
            input_ids=input_ids,
            pixel_values=pixel_values,
            image_sizes=image_sizes,
            pixel_values_videos=pixel_values_videos,
            image_sizes_videos=image_sizes_videos,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            vision_feature_layer=vision_feature_layer,
            vision_feature_select_strategy=vision_feature_select_strategy,
            vision_aspect_ratio=vision_aspect_ratio,
            batch_num_images=batch_num_images,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            mm_encoder_outputs=mm_encoder_outputs,
            video_timestamps=video_timestamps,
            **kwargs,
        )

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs):
        """Save in the layout transformers and vLLM both load (`checkpoint.saved_layout`); OneVision config if one."""
        with checkpoint.saved_layout(self):
            return super().save_pretrained(save_directory, *args, **kwargs)


checkpoint.register_conversions()

__all__ = ["VideoLLMForConditionalGeneration", "VideoLLMModel", "VideoLLMPreTrainedModel"]
