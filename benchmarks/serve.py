"""Serving throughput and latency: vLLM (with videollm's plugin) vs our transformers engine vs HF one at a time.

For 1, 4 and 8 concurrent clients streaming chat requests with real mp4s of the synthetic world to
each engine (the same checkpoint): requests/s, p50/p95 latency and time to first token. Then the
ratios the issue sets goals for (at 8 clients): vLLM / transformers engine (≥ 1.5×), vLLM / one-at-a-
time HF `generate` as the anchors' demo servers do (≥ 5×), and on vLLM mp4 input / pre-decoded frames
input (`video/jpeg` frames; ≥ 0.8: decoding must overlap generation). Results: benchmarks/results/serve.json.

The model is LLaVA-OneVision-shaped with a SmolLM2-135M-sized LM (random weights: speed only) and a
small SigLIP, built once under benchmarks/cache/. `--quick` runs a tiny version (smoke test).

    python benchmarks/serve.py [--engines vllm transformers] [--clients 1 4 8] [--requests 16]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from videollm.bench.provenance import run_record
from videollm.serve.launch import free_port, start_server, stop_server, wait_ready

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / "cache"
RESULTS = ROOT / "results"
QUESTION = "Describe what happens in the video."

SMOLLM2_135M = {  # SmolLM2-135M's shape (Llama), head size 64
    "model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
    "num_attention_heads": 9, "num_key_value_heads": 3, "max_position_embeddings": 8192,
}  # fmt: skip
SMALL_SIGLIP = {
    "hidden_size": 384,
    "intermediate_size": 1536,
    "num_hidden_layers": 6,
    "num_attention_heads": 6,
}
QUICK_LM = {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 2, "num_key_value_heads": 1}  # fmt: skip


def build_model(path: Path, quick: bool) -> Path:
    """A LLaVA-OneVision-format checkpoint (default connector) of the benchmark's size, cached."""
    if (path / "config.json").exists():
        return path
    import torch

    import videollm  # noqa: F401
    from videollm.model import tiny

    lm = QUICK_LM if quick else SMOLLM2_135M
    vision = {} if quick else SMALL_SIGLIP
    model, processor = tiny(
        vision="siglip",
        lm=lm["model_type"],
        image_size=32 if quick else 224,
        patch_size=8 if quick else 16,
        text_config={k: v for k, v in lm.items() if k != "model_type"},
        vision_config=vision,
        num_frames=16,
    )
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def make_videos(n: int, frames: int = 64, size: int = 224) -> list[Path]:
    """Synthetic-world mp4s (shapes that move, appear, change colour), cached."""
    from videollm.data.world import make_scene, render_scene
    from videollm.video.encode import write_video

    out = []
    for i in range(n):
        path = CACHE / f"serve_world_{i}_{frames}x{size}.mp4"
        if not path.exists():
            scene = make_scene(np.random.default_rng(i))
            write_video(path, render_scene(scene, frames, size), fps=16)
        out.append(path)
    return out


def data_url(path: Path) -> str:
    return "data:video/mp4;base64," + base64.b64encode(path.read_bytes()).decode()


def jpeg_frames_url(path: Path, frames: int) -> str:
    """The frames our sampler picks, pre-decoded, as vLLM's `video/jpeg` data URL (comma-separated JPEGs)."""
    from PIL import Image

    from videollm.inference.media import MediaPolicy

    video = MediaPolicy(num_frames=frames).load(path)
    parts = []
    for frame in video.frames:
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="JPEG", quality=95)
        parts.append(base64.b64encode(buf.getvalue()).decode())
    return "data:video/jpeg;base64," + ",".join(parts)


def start(engine: str, model: Path, frames: int, log: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    argv = ["--engine", engine, "--model", str(model), "--served-model-name", "bench",
            "--frames", str(frames), *extra]  # fmt: skip
    env = {"VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "4"), "HF_HUB_OFFLINE": "1"}
    proc = start_server(argv, port, log, env=env)
    try:
        ready_s = wait_ready(proc, port, log, timeout=1800)
    except BaseException:
        stop_server(proc)
        raise
    print(f"  {engine} ready in {ready_s:.0f} s", flush=True)
    return proc, f"http://127.0.0.1:{port}"


async def one(client, url: str, max_tokens: int) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    first = None
    tokens = 0
    stream = await client.chat.completions.create(
        model="bench",
        messages=[{"role": "user", "content": [{"type": "video_url", "video_url": {"url": url}},
                                               {"type": "text", "text": QUESTION}]}],
        max_tokens=max_tokens, temperature=0, stream=True, stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )  # fmt: skip
    async for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - t0
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
    total = time.perf_counter() - t0
    return total, first if first is not None else total, tokens


async def load(url: str, urls: list[str], clients: int, requests: int, max_tokens: int) -> dict:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=3600)
    queue = list(range(requests))
    results = []

    async def worker():
        while queue:
            i = queue.pop()
            results.append(await one(client, urls[i % len(urls)], max_tokens))

    await one(client, urls[0], 4)  # warm-up
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    wall = time.perf_counter() - t0
    await client.close()
    lat = [r[0] for r in results]
    ttft = [r[1] for r in results]
    return {
        "clients": clients,
        "requests": requests,
        "wall_s": round(wall, 3),
        "requests_per_s": round(requests / wall, 4),
        "tokens_per_s": round(sum(r[2] for r in results) / wall, 2),
        "latency_p50_s": round(statistics.median(lat), 3),
        "latency_p95_s": round(float(np.percentile(lat, 95)), 3),
        "ttft_p50_s": round(statistics.median(ttft), 3),
        "ttft_p95_s": round(float(np.percentile(ttft, 95)), 3),
        "completion_tokens": [r[2] for r in results][:4],
    }


def hf_one_at_a_time(
    model_dir: Path, videos: list[Path], frames: int, requests: int, max_tokens: int
) -> dict:
    """What the anchors' demo servers do: decode, preprocess and `generate` one request at a time."""
    import torch

    import videollm  # noqa: F401
    from videollm.inference.media import MediaPolicy
    from videollm.model import VideoLLMForConditionalGeneration, VideoLLMProcessor

    model = VideoLLMForConditionalGeneration.from_pretrained(model_dir).eval()
    processor = VideoLLMProcessor.from_pretrained(model_dir)
    policy = MediaPolicy(num_frames=frames)
    text = processor.apply_chat_template([{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": QUESTION}]}],
                                         add_generation_prompt=True, tokenize=False)  # fmt: skip

    def run(path: Path, n: int) -> None:
        inputs = processor(text=[text], videos=[policy.load(path)], return_tensors="pt")
        with torch.inference_mode():
            model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False)

    run(videos[0], 4)
    t0 = time.perf_counter()
    for i in range(requests):
        run(videos[i % len(videos)], max_tokens)
    wall = time.perf_counter() - t0
    return {"requests": requests, "wall_s": round(wall, 3), "requests_per_s": round(requests / wall, 4)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--engines", nargs="+", default=["vllm", "transformers"])
    p.add_argument("--clients", nargs="+", type=int, default=[1, 4, 8])
    p.add_argument("--requests", type=int, default=16, help="requests per concurrency level")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--vllm-args", default="--dtype bfloat16 --max-model-len 4096",
                   help="extra vLLM options (torch.compile is on unless --enforce-eager)")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="tiny model, few requests (smoke test)")
    p.add_argument(
        "--hf-only",
        action="store_true",
        help="re-measure only the one-at-a-time baseline, keep --out's engines",
    )
    p.add_argument("--out", type=Path, default=RESULTS / "serve.json")
    args = p.parse_args()
    run = run_record()  # machine, date, command, load average at the start
    if args.quick:
        args.clients, args.requests, args.max_tokens = [1, 4], 4, 8
        args.vllm_args = "--dtype float32 --enforce-eager --max-model-len 2048"
    CACHE.mkdir(exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    model_dir = build_model(
        CACHE / ("serve_model_quick" if args.quick else "serve_model_smollm2"), args.quick
    )
    videos = make_videos(8, frames=64, size=64 if args.quick else 224)
    mp4_urls = [data_url(v) for v in videos]
    out: dict = {
        "model": {"path": str(model_dir), "lm": "quick" if args.quick else "SmolLM2-135M-sized", "frames": args.frames,
                  "max_tokens": args.max_tokens},
        **run,
        "engines": {},
    }  # fmt: skip
    if args.hf_only:
        out["engines"] = json.loads(args.out.read_text())["engines"]
    for engine in [] if args.hf_only else args.engines:
        print(f"{engine}:", flush=True)
        extra = args.vllm_args.split() if engine == "vllm" else ["--batch-size", "8"]
        proc, url = start(engine, model_dir, args.frames, CACHE / f"serve_{engine}.log", extra)
        try:
            levels = []
            for clients in args.clients:
                r = asyncio.run(load(url, mp4_urls, clients, args.requests, args.max_tokens))
                print(f"  {clients} clients: {r['requests_per_s']:.3f} req/s, p50 {r['latency_p50_s']} s, "
                      f"p95 {r['latency_p95_s']} s, TTFT p50 {r['ttft_p50_s']} s", flush=True)  # fmt: skip
                levels.append(r)
            entry = {"args": extra, "levels": levels}
            if engine == "vllm":
                frame_urls = [jpeg_frames_url(v, args.frames) for v in videos]
                top = max(args.clients)
                r = asyncio.run(load(url, frame_urls, top, args.requests, args.max_tokens))
                entry["predecoded_frames"] = r
                print(f"  pre-decoded frames, {top} clients: {r['requests_per_s']:.3f} req/s", flush=True)
            out["engines"][engine] = entry
        finally:
            stop_server(proc, timeout=60)
    print("HF one at a time:", flush=True)
    out["hf_one_at_a_time"] = hf_one_at_a_time(model_dir, videos, args.frames, max(2, args.requests // 4),
                                               args.max_tokens)  # fmt: skip
    print(f"  {out['hf_one_at_a_time']['requests_per_s']:.3f} req/s", flush=True)

    def rps(engine: str, clients: int) -> float | None:
        for level in out["engines"].get(engine, {}).get("levels", []):
            if level["clients"] == clients:
                return level["requests_per_s"]
        return None

    top = max(args.clients)
    v, t, h = rps("vllm", top), rps("transformers", top), out["hf_one_at_a_time"]["requests_per_s"]
    ratios = {}
    if v and t:
        ratios[f"vllm_over_transformers_at_{top}"] = round(v / t, 3)
    if v and h:
        ratios[f"vllm_over_hf_one_at_a_time_at_{top}"] = round(v / h, 3)
    if v and "predecoded_frames" in out["engines"].get("vllm", {}):
        ratios["vllm_mp4_over_predecoded_frames"] = round(
            v / out["engines"]["vllm"]["predecoded_frames"]["requests_per_s"], 3
        )
    out["ratios"] = ratios
    out["goals"] = {
        "vllm_over_transformers": 1.5,
        "vllm_over_hf_one_at_a_time": 5.0,
        "vllm_mp4_over_predecoded_frames": 0.8,
    }
    print(json.dumps(ratios, indent=2))
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
