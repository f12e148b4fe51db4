"""Video frames → the vision tower's pixel values, in plain torch (no torchvision).

transformers' video processors need torchvision, whose PyPI wheel does not load next to a CPU
torch; this is the same computation done directly: resize each frame to the tower's square input
with the same `torch.nn.functional.interpolate` call torchvision makes (bicubic, antialiased, on
uint8 for LLaVA-OneVision), then rescale and normalise with the encoder's mean and std. The
settings read and write the `video_processor` section of a LLaVA-OneVision processor config, so
a checkpoint's stock video processor and this one agree on what a frame becomes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from videollm.video.types import Video

# OpenAI CLIP normalisation, LLaVA-OneVision's processor default.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# PIL resampling codes as stored in HF processor configs → interpolate modes.
RESAMPLE = {0: "nearest-exact", 2: "bilinear", 3: "bicubic"}
BICUBIC = 3


@dataclass(frozen=True)
class FrameTransform:
    """Resize to `size` (height, width), scale by `rescale_factor`, normalise by `mean`/`std`."""

    size: tuple[int, int]
    mean: tuple[float, ...] = CLIP_MEAN
    std: tuple[float, ...] = CLIP_STD
    rescale_factor: float = 1 / 255
    resample: int = BICUBIC

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", tuple(self.size))
        object.__setattr__(self, "mean", tuple(self.mean))
        object.__setattr__(self, "std", tuple(self.std))
        if self.resample not in RESAMPLE:
            raise ValueError(
                f"video resample={self.resample} is not supported; use 3 (bicubic), 2 (bilinear) or 0 (nearest)"
            )

    def to_dict(self) -> dict[str, Any]:
        """The `video_processor` section of a LLaVA-OneVision processor config."""
        return {
            "video_processor_type": "LlavaOnevisionVideoProcessor",
            "size": {"height": self.size[0], "width": self.size[1]},
            "image_mean": list(self.mean),
            "image_std": list(self.std),
            "rescale_factor": self.rescale_factor,
            "resample": self.resample,
            "do_resize": True,
            "do_rescale": True,
            "do_normalize": True,
            "do_convert_rgb": True,
            "do_sample_frames": False,
            "return_metadata": False,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FrameTransform:
        size = d["size"]
        if "height" not in size or "width" not in size:
            raise ValueError(
                f"video_processor.size must give height and width (the tower's input), got {size}"
            )
        for flag in ("do_resize", "do_rescale", "do_normalize"):
            if d.get(flag) is False:
                raise ValueError(
                    f"video_processor.{flag}=false is not supported: frames must match the vision tower"
                )
        return cls(
            size=(int(size["height"]), int(size["width"])),
            mean=tuple(d.get("image_mean", CLIP_MEAN)),
            std=tuple(d.get("image_std", CLIP_STD)),
            rescale_factor=float(d.get("rescale_factor", 1 / 255)),
            resample=int(d.get("resample", BICUBIC)),
        )


def stack_frames(video: Any, name: str = "video") -> np.ndarray:
    """One video (a `Video`, a T×H×W×3 uint8 array/tensor, or a list of H×W×3 frames) as uint8 T×H×W×3."""
    if isinstance(video, Video):
        frames = video.frames
    elif isinstance(video, torch.Tensor):
        frames = video.cpu().numpy()
    elif isinstance(video, np.ndarray):
        frames = video
    elif isinstance(video, Sequence) and not isinstance(video, str):
        if len(video) == 0:
            raise ValueError(
                f"{name} has zero frames; check that it decodes and that the sampled range is not empty"
            )
        arrays = [np.asarray(f.convert("RGB")) if hasattr(f, "convert") else np.asarray(f) for f in video]
        for i, frame in enumerate(arrays):
            if frame.ndim != 3 or frame.shape[-1] != 3:
                raise ValueError(
                    f"{name} frame {i} has shape {tuple(frame.shape)}; frames must be H×W×3 RGB "
                    "(a whole video is one T×H×W×3 array)"
                )
        sizes = sorted({a.shape for a in arrays})
        if len(sizes) > 1:
            raise ValueError(
                f"{name} has frames of mixed sizes {sizes}; resize them to one size "
                "(frames of one video come from one stream)"
            )
        frames = np.stack(arrays)
    else:
        raise ValueError(
            f"{name} is a {type(video).__name__}; pass a videollm.video.Video, a uint8 array T×H×W×3 or a list of frames"
        )
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{name} must be T×H×W×3 RGB frames, got shape {tuple(frames.shape)}")
    if frames.shape[0] == 0:
        raise ValueError(
            f"{name} has zero frames; check that it decodes and that the sampled range is not empty"
        )
    if frames.dtype != np.uint8:
        raise ValueError(
            f"{name} must be uint8 pixels 0–255, got {frames.dtype}; convert with .astype(np.uint8)"
        )
    return frames


def preprocess_frames(frames: np.ndarray, transform: FrameTransform) -> torch.Tensor:
    """uint8 T×H×W×3 → float32 T×3×h×w pixel values for the vision tower."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    if tuple(x.shape[-2:]) != transform.size:
        mode = RESAMPLE[transform.resample]
        kwargs = {"antialias": True, "align_corners": False} if mode != "nearest-exact" else {}
        x = F.interpolate(x.contiguous(), size=transform.size, mode=mode, **kwargs)
    # Rescale and normalise in one step, as transformers' processors do: (x - mean/r) / (std/r).
    scale = 1.0 / transform.rescale_factor
    mean = torch.tensor(transform.mean, dtype=torch.float32)[:, None, None] * scale
    std = torch.tensor(transform.std, dtype=torch.float32)[:, None, None] * scale
    return (x.to(torch.float32) - mean) / std


__all__ = ["FrameTransform", "preprocess_frames", "stack_frames"]
