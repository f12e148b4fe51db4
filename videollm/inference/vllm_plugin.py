"""videollm's vLLM plugins: what `vllm.general_plugins` and `vllm.endpoint_plugins` entry points call.

- `register()` (general plugin, runs in every vLLM process): makes `VideoLLMForConditionalGeneration`
  a vLLM architecture (so checkpoints of every connector serve) and adds the `videollm` video loader
  backend (`VLLM_VIDEO_LOADER_BACKEND=videollm`: frames sampled by videollm's sampler). Both are
  lazy and idempotent, as vLLM asks of plugins it may load several times.
- The endpoint plugin (`videollm.serve.vllm_routes:VideoLLMRoutes`, API server only, loaded when
  `VLLM_PLUGINS` names it, which `videollm serve` does) mounts videollm's routes on vLLM's app.

Default-connector checkpoints are stock LLaVA-OneVision and need neither: vLLM serves them itself.
"""

from __future__ import annotations

ARCHITECTURE = "VideoLLMForConditionalGeneration"
MODEL_CLASS = "videollm.inference.vllm_model:VideoLLMForConditionalGeneration"
GENERAL_PLUGIN = "videollm"
ENDPOINT_PLUGIN = "videollm_routes"
BACKEND = "videollm"  # the video loader's name in vLLM's registry (VLLM_VIDEO_LOADER_BACKEND)


def register() -> None:
    """Register the model class and the video loader with vLLM (cheap: nothing heavy is imported)."""
    from vllm import ModelRegistry
    from vllm.multimodal.video import VIDEO_LOADER_REGISTRY

    import videollm  # noqa: F401  (registers VideoLLMConfig / VideoLLMProcessor with transformers' Auto classes)

    if ARCHITECTURE not in ModelRegistry.get_supported_archs():
        ModelRegistry.register_model(ARCHITECTURE, MODEL_CLASS)
    from videollm.inference.vllm_video import VideoLLMVideoLoader

    if BACKEND not in VIDEO_LOADER_REGISTRY.name2class:
        VIDEO_LOADER_REGISTRY.register(BACKEND)(VideoLLMVideoLoader)
