"""`VideoLLMProcessor`: LLaVA-OneVision's processor with videollm's video path.

Images and text are OneVision's (its image processor, anyres placeholder counts, tokenizer, chat
template with `{"type": "video"}` parts). Videos are ours: `videollm.video.Video` objects or uint8
T×H×W×3 arrays, preprocessed by `frames.preprocess_frames` (no torchvision), each `<video>` expanded to
`tokens.num_video_tokens(...)` placeholders for any connector, optionally followed by LLaVA-Video's
time instruction built from the frames' timestamps. Bad input (placeholders ≠ videos, zero frames,
mixed frame sizes, a prompt longer than the LM's context) fails here, with the fix in the message.

With the OneVision choices its files are a stock `LlavaOnevisionProcessor`'s (`processor_class`
and the `video_processor` section included), so stock transformers and vLLM load them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from transformers import AutoImageProcessor, AutoTokenizer
from transformers.feature_extraction_utils import BatchFeature
from transformers.models.llava_onevision.processing_llava_onevision import LlavaOnevisionProcessor
from transformers.processing_utils import MultiModalData, ProcessingKwargs, ProcessorMixin

from videollm.model.connectors import DEFAULT, ConnectorConfig
from videollm.model.frames import FrameTransform, preprocess_frames, stack_frames
from videollm.model.tokens import check_fits_context, num_video_tokens, onevision_tokens
from videollm.video.types import Video


class VideoLLMProcessorKwargs(ProcessingKwargs, total=False):
    _defaults = {"text_kwargs": {"padding": False, "return_mm_token_type_ids": False}}  # noqa: RUF012 (HF's kwargs protocol)


def time_instruction(timestamps: np.ndarray, duration: float) -> str:
    """LLaVA-Video's time instruction for frames at `timestamps` (seconds) of a `duration`-second video."""
    times = ",".join(f"{t:.2f}s" for t in timestamps)
    return (
        f"The video lasts for {duration:.2f} seconds, and {len(timestamps)} frames are uniformly sampled from it. "
        f"These frames are located at {times}. Please answer the following questions related to this video."
    )


def _is_frame(x: Any) -> bool:
    return hasattr(x, "convert") or (isinstance(x, (np.ndarray, torch.Tensor)) and x.ndim == 3)


def flatten_videos(videos: Any) -> list[Any]:
    """Videos in placeholder order from one video, a list of videos, or per-sample lists (chat templates)."""
    if videos is None:
        return []
    if isinstance(videos, (Video, np.ndarray, torch.Tensor)):
        return [videos]
    if isinstance(videos, str):
        raise ValueError(
            f"video {videos!r} is a path; decode it first (a videollm.video.Video or a uint8 T×H×W×3 array)"
        )
    if isinstance(videos, (list, tuple)):
        if videos and _is_frame(videos[0]):
            return [videos]  # one video given as a list of frames
        return [v for item in videos for v in flatten_videos(item)]
    raise ValueError(
        f"videos of type {type(videos).__name__} are not supported; pass videollm.video.Video objects or uint8 "
        "T×H×W×3 arrays (one per <video> placeholder)"
    )


class VideoLLMProcessor(LlavaOnevisionProcessor):
    r"""
    [`LlavaOnevisionProcessor`] for images and text; videollm's frame preprocessing and placeholder expansion for
    videos.

    frame_transform (`FrameTransform` or `dict`, *optional*):
        Frame preprocessing: size (the tower's input), mean, std. A dict is a `video_processor` config section.
    connector (`dict`, *optional*), newline (`str`), time_instruction (`bool`):
        The model config's fields of the same names (they decide the tokens per video).
    num_frames (`int`, *optional*, defaults to 8):
        The model's default frames per video (for callers that sample).
    max_position_embeddings (`int`, *optional*):
        The LM's context; longer prompts are refused with a fix in the message.
    """

    valid_processor_kwargs = VideoLLMProcessorKwargs

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        num_image_tokens: int | None = None,
        vision_feature_select_strategy: str | None = None,
        chat_template: str | None = None,
        image_token: str = "<image>",
        video_token: str = "<video>",
        vision_aspect_ratio: str = "anyres_max_9",
        frame_transform: FrameTransform | dict | None = None,
        connector: dict | None = None,
        newline: str = "video",
        time_instruction: bool = False,
        num_frames: int = 8,
        max_position_embeddings: int | None = None,
    ):
        self.num_image_tokens = num_image_tokens
        self.vision_feature_select_strategy = vision_feature_select_strategy
        self.image_token = getattr(tokenizer, "image_token", None) or image_token
        self.video_token = getattr(tokenizer, "video_token", None) or video_token
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        self.vision_aspect_ratio = vision_aspect_ratio
        if frame_transform is None:
            size = image_processor.size
            frame_transform = FrameTransform(
                size=(size["height"], size["width"]),
                mean=image_processor.image_mean,
                std=image_processor.image_std,
            )
        elif isinstance(frame_transform, dict):
            frame_transform = FrameTransform.from_dict(frame_transform)
        self.frame_transform = frame_transform
        self.connector = ConnectorConfig.from_dict(connector or DEFAULT).to_dict()
        self.newline = newline
        self.time_instruction = time_instruction
        self.num_frames = num_frames
        self.max_position_embeddings = max_position_embeddings
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w) patch grid of a frame, as OneVision's processor derives it from `num_image_tokens`."""
        side = math.isqrt(self.num_image_tokens)
        return side, side

    @property
    def is_onevision(self) -> bool:
        """True when its video tokens are exactly LLaVA-OneVision's (then it saves as a stock OneVision processor)."""
        return onevision_tokens(self.connector, self.newline, self.time_instruction)

    def video_num_tokens(self, num_frames: int) -> int:
        """Placeholder tokens for one video of `num_frames` frames (connector tokens + newlines)."""
        return num_video_tokens(self.connector, self.newline, num_frames, self.grid)

    def __call__(self, images=None, text=None, videos=None, audio=None, **kwargs) -> BatchFeature:
        """Tokenise `text` with each `<video>` expanded, and preprocess `images` (OneVision) and `videos` (ours).

        Videos come back as `pixel_values_videos` (videos, frames, 3, H, W), or a list of (frames, 3, H, W)
        tensors when their frame counts differ.
        """
        videos = flatten_videos(videos)
        texts = None if text is None else [text] if isinstance(text, str) else list(text)
        videos_per_row = [t.count(self.video_token) for t in texts or []]
        if texts is not None and sum(videos_per_row) != len(videos):
            raise ValueError(
                f"the text has {sum(videos_per_row)} {self.video_token} placeholder(s) but {len(videos)} video(s) "
                f"were given; put one {self.video_token} in the text per video (a {{'type': 'video'}} part in chat "
                "messages)"
            )
        clips = [self._clip(video, f"video {i}") for i, video in enumerate(videos)]
        if texts is not None and clips:
            texts = self._expand(texts, clips)
        if texts is None and images is None:
            outputs = BatchFeature({})
        else:
            outputs = super().__call__(images=images, text=texts, **kwargs)
        if not clips:
            return outputs
        frames = [c["pixels"].shape[0] for c in clips]
        if texts is not None:
            self._check_context(outputs["input_ids"], videos_per_row, frames)
        same_length = len(set(frames)) == 1
        pixels = [c["pixels"] for c in clips]
        outputs["pixel_values_videos"] = torch.stack(pixels) if same_length else pixels
        if ConnectorConfig.from_dict(self.connector).temporal_embed is not None:
            stamps = [torch.as_tensor(c["timestamps"], dtype=torch.float32) for c in clips]
            outputs["video_timestamps"] = torch.stack(stamps) if same_length else stamps
        return outputs

    def _clip(self, video: Any, name: str) -> dict[str, Any]:
        frames = stack_frames(video, name)
        stamps = video.timestamps if isinstance(video, Video) else None
        if stamps is None and ConnectorConfig.from_dict(self.connector).temporal_embed is not None:
            stamps = np.arange(frames.shape[0], dtype=np.float32)  # frame order when times are unknown
        if self.time_instruction and not isinstance(video, Video):
            raise ValueError(
                f"{name}: time_instruction needs frame timestamps; pass a videollm.video.Video (decoded with its "
                "timestamps) or build the model with time_instruction=False"
            )
        return {
            "pixels": preprocess_frames(frames, self.frame_transform),
            "timestamps": stamps,
            "duration": video.duration if isinstance(video, Video) else None,
        }

    def _expand(self, texts: list[str], clips: list[dict[str, Any]]) -> list[str]:
        """Replace the i-th `<video>` with its placeholder run (+ time instruction)."""
        replacements = iter(clips)
        out = []
        for text in texts:
            parts = text.split(self.video_token)
            pieces = [parts[0]]
            for part in parts[1:]:
                clip = next(replacements)
                run = self.video_token * self.video_num_tokens(clip["pixels"].shape[0])
                if self.time_instruction:
                    run += "\n" + time_instruction(clip["timestamps"], clip["duration"])
                pieces += [run, part]
            out.append("".join(pieces))
        return out

    def _check_context(self, input_ids: Any, videos_per_row: list[int], frames: list[int]) -> None:
        """Refuse rows longer than the LM's context, saying which knob brings them under it."""
        if not self.max_position_embeddings:
            return
        rows = input_ids.tolist() if hasattr(input_ids, "tolist") else input_ids
        start = 0
        for row, count in zip(rows, videos_per_row, strict=True):
            row_frames = frames[start : start + count]
            start += count
            video_tokens = sum(self.video_num_tokens(t) for t in row_frames)
            check_fits_context(
                self.connector,
                self.newline,
                row_frames,
                self.grid,
                len(row) - video_tokens,
                self.max_position_embeddings,
            )

    def _get_num_multimodal_tokens(self, image_sizes=None, video_sizes=None, **kwargs) -> MultiModalData:
        data = super()._get_num_multimodal_tokens(image_sizes=image_sizes, **kwargs)
        if video_sizes is not None:
            data["num_video_tokens"] = [self.video_num_tokens(num_frames) for num_frames, _, _ in video_sizes]
        return data

    @property
    def model_input_names(self) -> list[str]:
        names = [
            *self.tokenizer.model_input_names,
            *self.image_processor.model_input_names,
            "pixel_values_videos",
        ]
        if ConnectorConfig.from_dict(self.connector).temporal_embed is not None:
            names.append("video_timestamps")
        return list(dict.fromkeys(names))

    def to_dict(self) -> dict[str, Any]:
        """The processor config; a stock LlavaOnevisionProcessor's when the model is exactly OneVision."""
        out = super().to_dict()
        out.pop("frame_transform", None)
        out["video_processor"] = self.frame_transform.to_dict()
        out["video_token"] = self.video_token
        if self.is_onevision:
            out["processor_class"] = "LlavaOnevisionProcessor"
        return out

    @classmethod
    def from_args_and_dict(cls, args, processor_dict: dict[str, Any], **kwargs):
        processor_dict = dict(processor_dict)
        section = processor_dict.pop("video_processor", None)
        if section is not None and "frame_transform" not in processor_dict:
            processor_dict["frame_transform"] = FrameTransform.from_dict(section)
        return super().from_args_and_dict(args, processor_dict, **kwargs)

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        # The PIL image processor: the torchvision one needs a torchvision that loads next to torch.
        image_processor = AutoImageProcessor.from_pretrained(
            pretrained_model_name_or_path, backend="pil", **kwargs
        )
        tokenizer = AutoTokenizer.from_pretrained(pretrained_model_name_or_path, **kwargs)
        return [image_processor, tokenizer]


__all__ = ["VideoLLMProcessor", "flatten_videos", "time_instruction"]
