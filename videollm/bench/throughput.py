"""Serving throughput of one checkpoint on the vLLM engine: `python -m videollm.bench.throughput MODEL ...`.

Run by the study in a subprocess, so vLLM's worker processes, threads and memory come and go with
it. Sends the first `--requests` synthetic_qa items of `--data-root` as one batch (after one warm-up
request) and prints one JSON line: requests/s, output tokens/s, and the engine's description.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m videollm.bench.throughput", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("model", help="checkpoint folder")
    p.add_argument("--data-root", required=True, help="a synthetic world split (qa.jsonl + videos)")
    p.add_argument("--frames", type=int, default=8, help="frames sampled uniformly per video")
    p.add_argument("--requests", type=int, default=16, help="requests in the measured batch")
    p.add_argument(
        "--enforce-eager", action="store_true", help="no torch.compile (faster start, slower steps)"
    )
    p.add_argument("--kv-cache-mb", type=int, default=256, help="KV cache size (MiB)")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))

    from videollm.eval.loaders import load_items
    from videollm.eval.tasks import all_specs
    from videollm.inference.engine import GenerationRequest
    from videollm.inference.vllm_engine import VLLMEngine
    from videollm.video.sampling import FrameSampler

    spec = all_specs()["synthetic_qa"]
    items = load_items(spec, args.data_root)[: args.requests]
    sampler = FrameSampler.uniform(args.frames)
    requests = [
        GenerationRequest(it.prompt, it.video, sampler, max_new_tokens=spec.max_new_tokens, temperature=0.0)
        for it in items
    ]
    t0 = time.perf_counter()
    engine = VLLMEngine(
        args.model,
        default_sampler=sampler,
        enforce_eager=args.enforce_eager,
        max_model_len=2048,
        kv_cache_memory_bytes=args.kv_cache_mb << 20,  # fixed, not a share of a shared machine's memory
    )
    startup = time.perf_counter() - t0
    engine.generate(requests[:1])  # warm-up
    t0 = time.perf_counter()
    texts = engine.generate(requests)
    seconds = time.perf_counter() - t0
    tokens = sum(len(engine.processor.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    print(
        json.dumps(
            {
                "engine": "vllm",
                "requests": len(requests),
                "seconds": seconds,
                "requests_per_s": len(requests) / seconds,
                "output_tokens_per_s": tokens / seconds,
                "startup_s": startup,
                "enforce_eager": args.enforce_eager,
                "dtype": engine.dtype,
                # vLLM V1's engine core in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0) or in its own
                "engine_core": "in-process"
                if os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == "0"
                else "subprocess",
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
