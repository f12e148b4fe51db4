"""The engine interface shared by evaluation and serving, and its transformers implementation.

An engine turns (prompt, video) requests into text. Evaluation talks to a model only through one
(DESIGN.md: `eval/` knows engines and endpoints, not models); the serving engines build on the
same protocol. Kept deliberately small:

    class Engine(Protocol):
        def generate(self, requests: Sequence[GenerationRequest]) -> list[str]: ...
        def describe(self) -> dict: ...           # provenance: model, connector, versions

`generate` returns one string per request, in order. Bad input (a video that cannot be decoded)
raises `videollm.video.VideoError` for the whole call; callers that need per-request isolation
(the eval runner) retry a failed batch one request at a time. An engine with `concurrent = True`
is called from several threads at once (an HTTP client); otherwise callers batch up to
`batch_size` requests per call.

The video is decoded here with videollm's own sampler (`FrameSampler`), so every engine sees the
frames training and serving see.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from videollm.video.decode import DEFAULT_BACKEND
from videollm.video.sampling import FrameSampler


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt about (at most) one video. `sampler` None = the engine's default frames."""

    prompt: str
    video: str | Path | None = None
    sampler: FrameSampler | None = None
    max_new_tokens: int = 64
    temperature: float = 0.0
    seed: int | None = None
    frames_fps: float | None = None  # frame rate of a directory-of-frames video (it has none of its own)


@runtime_checkable
class Engine(Protocol):
    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]: ...

    def describe(self) -> dict: ...


def package_versions(*names: str) -> dict[str, str | None]:
    """Installed versions, read from package metadata (nothing imported)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def model_fingerprint(path: str | Path) -> dict[str, Any]:
    """A cheap identity for a checkpoint folder: sha256 of its config files and weight-file headers.

    Hashing every byte of a multi-GB checkpoint would dominate a small evaluation; the config plus
    each weight file's size and first MiB (safetensors' header lists every tensor and offset)
    changes whenever the weights are re-saved.
    """
    path = Path(path)
    if not path.is_dir():
        return {"path": str(path), "sha256": None}
    h = hashlib.sha256()
    files = sorted(
        p
        for p in path.iterdir()
        if p.is_file() and p.suffix in {".json", ".safetensors", ".bin", ".model", ".txt"}
    )
    for p in files:
        h.update(p.name.encode())
        h.update(str(p.stat().st_size).encode())
        with open(p, "rb") as f:
            h.update(f.read(1 << 20))
    connector = None
    config = path / "config.json"
    if config.exists():
        try:
            cfg = json.loads(config.read_text())
            if cfg.get("model_type") == "videollm":
                connector = cfg.get("connector")
            elif cfg.get("model_type") == "llava_onevision":  # the default connector saves as OneVision
                connector = {"type": "spatial_pool", "mode": "bilinear", "stride": 2, "stage": "post"}
        except json.JSONDecodeError:
            pass
    return {"path": str(path.resolve()), "sha256": h.hexdigest(), "connector": connector}


class TransformersEngine:
    """In-process generation with `VideoLLMForConditionalGeneration` + `VideoLLMProcessor`.

    Greedy decoding at temperature 0 (sampling otherwise, seeded per request when a seed is given);
    requests are batched with left padding. `default_sampler` applies to requests without one.
    """

    concurrent = False

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        name: str = "",
        default_sampler: FrameSampler | None = None,
        batch_size: int = 4,
        backend: str = DEFAULT_BACKEND,
        source_path: str | Path | None = None,
        device: str | None = None,
    ):
        if device is not None:
            model = model.to(device)
        self.model = model.eval()
        self.processor = processor
        self.name = (
            name or getattr(getattr(model, "config", None), "_name_or_path", "") or type(model).__name__
        )
        self.default_sampler = default_sampler or FrameSampler.uniform(8)
        self.batch_size = max(1, batch_size)
        self.backend = backend
        self.source_path = source_path

    @classmethod
    def from_pretrained(cls, path: str | Path, *, dtype: str = "auto", **kwargs: Any) -> TransformersEngine:
        """Load a videollm or LLaVA-OneVision checkpoint (a local folder or a hub id)."""
        import torch

        from videollm.model import VideoLLMForConditionalGeneration, VideoLLMProcessor

        device = kwargs.pop("device", None) or ("cuda" if torch.cuda.is_available() else "cpu")
        if (
            dtype == "auto"
        ):  # bf16 where it is fast and safe (GPU), fp32 on CPU (exact, and what tests compare)
            torch_dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        else:
            torch_dtype = getattr(torch, dtype)
        model = VideoLLMForConditionalGeneration.from_pretrained(str(path), dtype=torch_dtype)
        processor = VideoLLMProcessor.from_pretrained(str(path))
        return cls(model, processor, name=str(path), source_path=path, device=device, **kwargs)

    def describe(self) -> dict:
        config = getattr(self.model, "config", None)
        info: dict[str, Any] = {
            "engine": "transformers",
            "model": self.name,
            "model_class": type(self.model).__name__,
            "connector": getattr(config, "connector", None),
            "dtype": str(next(self.model.parameters()).dtype),
            "batch_size": self.batch_size,
            "decoder_backend": self.backend,
        }
        if self.source_path is not None:
            info["checkpoint"] = model_fingerprint(self.source_path)
        return info

    def _messages(self, prompt: str, has_video: bool) -> list[dict]:
        content: list[dict] = [{"type": "video"}] if has_video else []
        content.append({"type": "text", "text": prompt})
        return [{"role": "user", "content": content}]

    def _load(self, r: GenerationRequest, load_video: Any) -> Any:
        kwargs: dict[str, Any] = {"backend": self.backend}
        if r.frames_fps:
            kwargs["frames_fps"] = r.frames_fps
        return load_video(r.video, r.sampler or self.default_sampler, **kwargs)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        import torch

        from videollm.video import load_video

        outputs: list[str] = [""] * len(requests)
        # requests that must be generated together share decoding settings
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.max_new_tokens, r.temperature, r.seed, r.video is None), []).append(i)
        tokenizer = getattr(self.processor, "tokenizer", None)
        if tokenizer is not None:
            tokenizer.padding_side = "left"
        for (max_new, temperature, seed, no_video), idx in groups.items():
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start : start + self.batch_size]
                videos = (
                    []
                    if no_video
                    else [
                        load_video(
                            requests[i].video,
                            requests[i].sampler or self.default_sampler,
                            backend=self.backend,
                        )
                        for i in chunk
                    ]
                )
                texts = [
                    self.processor.apply_chat_template(
                        self._messages(requests[i].prompt, not no_video),
                        add_generation_prompt=True,
                        tokenize=False,
                    )
                    for i in chunk
                ]
                kwargs: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
                if videos:
                    kwargs["videos"] = videos
                inputs = self.processor(**kwargs).to(self.model.device, dtype=self.model.dtype)
                gen: dict[str, Any] = {"max_new_tokens": max_new, "do_sample": temperature > 0}
                if temperature > 0:
                    gen["temperature"] = temperature
                    if seed is not None:
                        torch.manual_seed(seed)
                if tokenizer is not None and tokenizer.pad_token_id is not None:
                    gen["pad_token_id"] = tokenizer.pad_token_id
                with torch.inference_mode():
                    out = self.model.generate(**inputs, **gen)
                new_tokens = out[:, inputs["input_ids"].shape[1] :]
                decoded = self.processor.batch_decode(new_tokens, skip_special_tokens=True)
                for i, text in zip(chunk, decoded, strict=True):
                    outputs[i] = text.strip()
        return outputs
