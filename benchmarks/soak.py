"""Soak: 8 clients for 5 minutes against each engine, good and bad inputs mixed, memory watched.

Each client loops over a mix: good requests (plain and streaming), streams it abandons midway,
and bad inputs (corrupt mp4, bad base64, a text file named .mp4, wrong API key, unknown model,
malformed JSON, too many frames, a host that is not allowed). Reports counts by HTTP status per
engine and the server's memory (RSS of its process tree) over time. Goals: zero 5xx, memory flat.
Results: benchmarks/results/soak.json.

    python benchmarks/soak.py [--seconds 300] [--clients 8] [--engines vllm transformers] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import random
import sys
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve as bench  # benchmarks/serve.py: model, videos, server start
from videollm.bench.provenance import run_record
from videollm.serve.launch import stop_server

KEY = "sk-soak"


def body(url: str, **extra) -> dict:
    return {"model": "bench", "max_tokens": 16, "temperature": 0, "messages": [{"role": "user", "content": [
        {"type": "video_url", "video_url": {"url": url}}, {"type": "text", "text": "What happens?"}]}], **extra}  # fmt: skip


def mix(good_url: str, clip: bytes) -> list[tuple[str, dict]]:
    import base64

    def b64(data: bytes) -> str:
        return "data:video/mp4;base64," + base64.b64encode(data).decode()

    return [
        ("good", {"json": body(good_url)}),
        ("good stream", {"json": body(good_url, stream=True)}),
        ("abandoned stream", {"json": body(good_url, stream=True, max_tokens=512), "abandon": True}),
        ("corrupt mp4", {"json": body(b64(clip[: len(clip) // 3]))}),
        ("bad base64", {"json": body("data:video/mp4;base64,%%%")}),
        ("text as mp4", {"json": body(b64(b"hello " * 100))}),
        ("wrong key", {"json": body(good_url), "key": "nope"}),
        ("unknown model", {"json": {**body(good_url), "model": "nope"}}),
        ("malformed JSON", {"content": b'{"model": "bench", "messages": ['}),
        ("too many frames", {"json": body(good_url, mm_processor_kwargs={"num_frames": 100_000})}),
        ("host not allowed", {"json": body("http://169.254.169.254/latest/meta-data")}),
    ]


def tree_rss(pid: int) -> int:
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


async def client_loop(
    url: str, cases, deadline: float, counts: collections.Counter, rng: random.Random
) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=600) as h:
        while time.monotonic() < deadline:
            name, case = rng.choice(cases)
            headers = {"Authorization": f"Bearer {case.get('key', KEY)}"}
            kwargs = {"json": case["json"]} if "json" in case else {"content": case["content"]}
            if "content" in case:
                headers["Content-Type"] = "application/json"
            try:
                async with h.stream("POST", "/v1/chat/completions", headers=headers, **kwargs) as r:
                    counts[(name, r.status_code)] += 1
                    async for _ in r.aiter_lines():
                        if case.get("abandon"):
                            break  # hang up mid-stream
            except httpx.HTTPError as e:
                counts[(name, f"client error {type(e).__name__}")] += 1


async def soak(url: str, pid: int, cases, seconds: float, clients: int) -> dict:
    counts: collections.Counter = collections.Counter()
    memory = []
    deadline = time.monotonic() + seconds
    start = time.monotonic()

    async def watch():
        while time.monotonic() < deadline:
            memory.append((round(time.monotonic() - start, 1), tree_rss(pid)))
            await asyncio.sleep(5)

    await asyncio.gather(
        watch(), *(client_loop(url, cases, deadline, counts, random.Random(i)) for i in range(clients))
    )
    by_status = collections.Counter()
    for (_, status), n in counts.items():
        by_status[str(status)] += n
    settled = [m for t, m in memory if t >= min(30.0, seconds / 4)] or [m for _, m in memory]
    return {
        "seconds": seconds,
        "clients": clients,
        "by_status": dict(by_status),
        "by_case": {f"{name} -> {status}": n for (name, status), n in sorted(counts.items(), key=str)},
        "server_errors_5xx": sum(n for s, n in by_status.items() if s.startswith("5")),
        "memory_rss_mb": [(t, round(m / 2**20, 1)) for t, m in memory],
        "memory_growth_after_warmup": round(settled[-1] / settled[0], 3) if settled and settled[0] else None,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--engines", nargs="+", default=["vllm", "transformers"])
    p.add_argument("--seconds", type=float, default=300)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--quick", action="store_true", help="tiny model, 30 s")
    p.add_argument("--out", type=Path, default=bench.RESULTS / "soak.json")
    args = p.parse_args()
    run = run_record()  # machine, date, command, load average at the start
    if args.quick:
        args.seconds = min(args.seconds, 30)
    bench.CACHE.mkdir(exist_ok=True)
    bench.RESULTS.mkdir(exist_ok=True)
    model = bench.build_model(
        bench.CACHE / ("serve_model_quick" if args.quick else "serve_model_smollm2"), args.quick
    )
    video = bench.make_videos(1, frames=64, size=64 if args.quick else 224)[0]
    cases = mix(bench.data_url(video), video.read_bytes())
    out = {"model": str(model), **run, "engines": {}}
    for engine in args.engines:
        extra = ["--api-key", KEY, "--max-frames", "64"]
        if engine == "vllm":
            extra += ["--dtype", "float32", "--enforce-eager", "--max-model-len", "4096"]
        proc, url = bench.start(engine, model, 8, bench.CACHE / f"soak_{engine}.log", extra)
        try:
            result = asyncio.run(soak(url, proc.pid, cases, args.seconds, args.clients))
        finally:
            stop_server(proc)
        print(f"{engine}: {result['by_status']}  5xx={result['server_errors_5xx']}  "
              f"memory growth after warm-up ×{result['memory_growth_after_warmup']}", flush=True)  # fmt: skip
        out["engines"][engine] = result
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
