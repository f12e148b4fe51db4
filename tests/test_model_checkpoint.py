"""Save/load round trips, Auto* loading after `import videollm`, and the key layout vLLM reads."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import random_clip
from safetensors import safe_open
from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

from videollm.model import (
    VideoLLMConfig,
    VideoLLMForConditionalGeneration,
    VideoLLMModel,
    VideoLLMProcessor,
    tiny,
)
from videollm.model.checkpoint import SAVED_PREFIXES

RESAMPLER = {"type": "resampler", "num_queries": 3, "per_frame": True, "temporal_embed": "learned"}


@pytest.fixture(scope="module")
def saved_resampler(tmp_path_factory):
    """A non-default model (resampler per frame + frame newlines + ST-Adapter + prompts), saved."""
    model, processor = tiny(
        RESAMPLER,
        "siglip",
        "qwen2",
        newline="frame",
        adapter={"layers": [1]},
        prompt={"num_tokens": 2},
        seed=1,
    )
    with torch.no_grad():  # adapters are zero at init: make them matter for the round trip
        for name, param in model.named_parameters():
            if "st_adapter" in name or "temporal" in name:
                param.normal_(0, 0.5)
    path = tmp_path_factory.mktemp("resampler")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return model, processor, path


def test_non_default_connector_round_trip(saved_resampler):
    model, processor, path = saved_resampler
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "videollm" and config["architectures"] == [
        "VideoLLMForConditionalGeneration"
    ]
    assert config["connector"]["type"] == "resampler" and config["newline"] == "frame"
    with safe_open(path / "model.safetensors", "pt") as f:
        keys = list(f.keys())
    assert all(k.startswith(SAVED_PREFIXES) for k in keys)
    assert any(k.startswith("connector.") for k in keys)
    assert any(".st_adapter." in k and k.startswith("vision_tower.vision_model.") for k in keys)

    loaded, info = VideoLLMForConditionalGeneration.from_pretrained(path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    expected = model.state_dict()
    assert set(loaded.state_dict()) == set(expected)
    assert all(torch.equal(t, expected[k]) for k, t in loaded.state_dict().items())

    loaded_processor = VideoLLMProcessor.from_pretrained(path)
    assert loaded_processor.connector == processor.connector and loaded_processor.newline == "frame"
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "hi"}]}],
        add_generation_prompt=True,
    )
    inputs = loaded_processor(text=text, videos=random_clip(3), return_tensors="pt")
    assert "video_timestamps" in inputs  # the connector has a temporal embedding
    with torch.no_grad():
        assert torch.equal(loaded.eval()(**inputs).logits, model(**inputs).logits)


def test_auto_classes_load_videollm_checkpoints(saved_resampler):
    _, _, path = saved_resampler
    assert type(AutoConfig.from_pretrained(path)) is VideoLLMConfig
    assert type(AutoModelForImageTextToText.from_pretrained(path)) is VideoLLMForConditionalGeneration
    assert type(AutoModel.from_pretrained(path)) is VideoLLMModel
    processor = AutoProcessor.from_pretrained(path)
    assert type(processor) is VideoLLMProcessor
    assert (
        type(processor.image_processor).__name__ == "LlavaOnevisionImageProcessorPil"
    )  # no torchvision needed


def test_import_is_light_and_registers_lazily(saved_resampler):
    """In a fresh interpreter: `import videollm` imports neither torch nor transformers, yet Auto* find it."""
    _, _, path = saved_resampler
    script = textwrap.dedent(
        f"""
        import sys
        import videollm
        assert "torch" not in sys.modules and "transformers" not in sys.modules, "import videollm got heavy"
        from transformers import AutoModelForImageTextToText, AutoProcessor
        assert "videollm.model.modeling" not in sys.modules  # registered by name, imported on first lookup
        model = AutoModelForImageTextToText.from_pretrained({str(path)!r})
        processor = AutoProcessor.from_pretrained({str(path)!r})
        print(type(model).__name__, type(processor).__name__)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[-2:] == ["VideoLLMForConditionalGeneration", "VideoLLMProcessor"]


@pytest.mark.slow
def test_vllm_loads_the_saved_vision_tower(onevision_tiny, tiny_model, tmp_path):
    """vLLM's own CLIP/SigLIP towers and weight loader take every saved vision weight; stock's flat layout fails."""
    from transformers import LlavaOnevisionForConditionalGeneration

    onevision, _ = onevision_tiny
    onevision.save_pretrained(tmp_path / "siglip")
    tiny_model("spatial_pool", "clip", "llama")[0].save_pretrained(tmp_path / "clip")
    # A fresh stock model saves its tower flattened: the layout videollm's save_pretrained avoids.
    LlavaOnevisionForConditionalGeneration(onevision.config.to_onevision()).save_pretrained(tmp_path / "flat")
    script = textwrap.dedent(
        f"""
        import videollm
        from safetensors.torch import load_file
        from transformers import AutoConfig
        from vllm.config import VllmConfig, set_current_vllm_config
        from vllm.distributed import init_distributed_environment, initialize_model_parallel
        from vllm.model_executor.models.clip import CLIPVisionModel
        from vllm.model_executor.models.siglip import SiglipVisionModel
        from vllm.model_executor.models.llava_onevision import LlavaOnevisionForConditionalGeneration as V
        from vllm.model_executor.models.utils import AutoWeightsLoader

        def unloaded(path):
            config = AutoConfig.from_pretrained(path)
            weights = {{V.hf_to_vllm_mapper._map_name(k): v for k, v in load_file(f"{{path}}/model.safetensors").items()}}
            tower_weights = {{k[len("vision_tower."):]: v for k, v in weights.items() if k.startswith("vision_tower.")}}
            cls = SiglipVisionModel if config.vision_config.model_type == "siglip_vision_model" else CLIPVisionModel
            tower = cls(config.vision_config, require_post_norm=False)
            loaded = AutoWeightsLoader(tower).load_weights(tower_weights.items())
            return sorted({{n for n, _ in tower.named_parameters()}} - loaded)

        with set_current_vllm_config(VllmConfig()):
            init_distributed_environment(1, 0, "tcp://127.0.0.1:29581", 0, backend="gloo")
            initialize_model_parallel(1, 1)
            for name in ("siglip", "clip"):
                print("RESULT", name, unloaded(f"{tmp_path}/{{name}}"))
            try:
                unloaded("{tmp_path}/flat")
                print("RESULT flat loaded")
            except ValueError:
                print("RESULT flat refused")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    results = [line for line in out.stdout.splitlines() if line.startswith("RESULT")]
    assert results == ["RESULT siglip []", "RESULT clip []", "RESULT flat refused"], out.stdout
