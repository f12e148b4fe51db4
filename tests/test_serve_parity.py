"""Engine parity: vLLM (server and offline engine) and the transformers engine, identical greedy tokens.

For the default connector (served by vLLM as stock LLaVA-OneVision), `pool3d` (served through
videollm's plugin) — `spatiotemporal_pool` is covered in test_serve_vllm.py — the same fp32
checkpoint and video give the same prompt and the same greedy tokens on both engines. Slow tier:
one vLLM server per connector, one at a time.
"""

from __future__ import annotations

import pytest
from serving import save_tiny, stop_server, write_clip
from test_serve_vllm import (
    CONNECTORS,
    QUESTION,
    assert_same_greedy,
    serve_vllm,
    transformers_tokens,
    vllm_tokens,
)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["default", "pool3d"])
def test_parity_with_transformers(tmp_path, name):
    model_dir = save_tiny(tmp_path / name, CONNECTORS[name])
    clip = write_clip(tmp_path / "clip.mp4")
    proc, port = serve_vllm(model_dir, tmp_path, "--frames", "8")
    try:
        prompt, tokens, margins = vllm_tokens(f"http://127.0.0.1:{port}", clip, 12)
    finally:
        stop_server(proc)
    ref_prompt, ref_tokens = transformers_tokens(model_dir, clip, frames=8, max_tokens=12)
    assert prompt == ref_prompt
    assert_same_greedy(tokens, ref_tokens, margins)


def test_offline_vllm_engine_matches_the_eval_transformers_engine(tmp_path, monkeypatch):
    """`VLLMEngine` (the Engine protocol on vllm.LLM) answers as the eval's transformers engine does."""
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; vLLM's default wants 92 % of free memory
    import videollm  # noqa: F401
    from videollm.inference.engine import GenerationRequest, TransformersEngine
    from videollm.inference.vllm_engine import VLLMEngine
    from videollm.video.sampling import FrameSampler

    model_dir = save_tiny(tmp_path / "stp", CONNECTORS["spatiotemporal_pool"])
    clip = write_clip(tmp_path / "clip.mp4")
    requests = [
        GenerationRequest(QUESTION, video=clip, sampler=FrameSampler.uniform(n), max_new_tokens=6)
        for n in (4, 8)
    ] + [GenerationRequest("No video here.", max_new_tokens=6)]
    engine = VLLMEngine(model_dir, dtype="float32", enforce_eager=True, max_model_len=2048, backend="pyav")
    try:
        got = engine.generate(requests)
        assert engine.describe()["engine"] == "vllm"
    finally:
        del engine
    want = TransformersEngine.from_pretrained(model_dir, batch_size=1, backend="pyav").generate(requests)
    assert got == want
