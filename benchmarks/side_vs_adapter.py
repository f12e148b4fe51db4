"""Side-tuning vs adapters: training memory and time per step on the same tiny-ish recipe.

    .venv/bin/python benchmarks/side_vs_adapter.py [--steps 6] [--frames 8] [--batch 2] [--device cpu]

One model (CLIP-style tower 6×256 wide on 64-px frames: an 8×8 patch grid, a 4-layer LM), one batch of
videos, the trainer's own strategy functions (`videollm.train.strategies.apply_strategy`) for
`frozen` (baseline), `adapter` (ST-Adapter), `adapter` (Mamba), `side`; AdamW steps of forward +
backward. Each strategy runs in its own process, so peak memory is its own. Reported per strategy:

- `activation_mb`: bytes autograd saves for backward in one step (counted exactly with
  `saved_tensors_hooks`; independent of the machine's load) — where side-tuning's saving lives;
- `peak_rss_mb` (CPU: the process's peak resident memory during training steps, above the
  model-ready process) or `peak_cuda_mb` (GPU: `max_memory_allocated` above the model-ready baseline);
- `step_s`: median seconds per training step (after a warm-up step), and process CPU seconds per step.

Prints a table, writes benchmarks/results/side_vs_adapter.json (key: the device).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "side_vs_adapter.json"

STRATEGIES = {
    "frozen": {"strategy": "frozen"},
    "adapter (st_adapter)": {"strategy": "adapter", "adapter": {"type": "st_adapter"}},
    "adapter (mamba)": {"strategy": "adapter", "adapter": {"type": "mamba"}},
    "side": {"strategy": "side", "side": {}},
}
VISION = {"hidden_size": 256, "intermediate_size": 1024, "num_hidden_layers": 6, "num_attention_heads": 4}
TEXT = {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 4, "num_attention_heads": 4}


def measure(name: str, steps: int, frames: int, batch: int, device: str) -> dict:
    """One strategy's numbers, in this process."""
    import torch

    from videollm.model import tiny
    from videollm.model.tokens import video_num_tokens
    from videollm.train.recipe import Recipe
    from videollm.train.strategies import apply_strategy, trainable_summary

    torch.manual_seed(0)
    model, processor = tiny(
        "spatial_pool",
        "clip",
        "llama",
        image_size=64,
        patch_size=8,
        vision_config=VISION,
        text_config=TEXT,
    )
    model = apply_strategy(model.to(device).train(), Recipe(**STRATEGIES[name]))
    tokenizer = processor.tokenizer
    video = [model.config.video_token_id] * video_num_tokens(model.config, frames)
    answer = tokenizer("the red square moves left then turns blue", add_special_tokens=False)["input_ids"]
    ids = torch.tensor([video + answer] * batch, device=device)
    labels = ids.clone()
    labels[:, : len(video)] = -100
    pixels = torch.randn(batch, frames, 3, 64, 64, device=device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step() -> None:
        loss = model(input_ids=ids, pixel_values_videos=pixels, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        base_cuda = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # model + data ready
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()  # warm-up (optimizer state appears here), also counts what autograd keeps for backward
    times, cpu = [], []
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    trainable = sum(t for t, _ in trainable_summary(model).values())
    out = {
        "trainable_params": trainable,
        "activation_mb": saved[0] / 2**20,
        "step_s": statistics.median(times),
        "step_s_min": min(times),
        "cpu_s_per_step": statistics.median(cpu),
    }
    if cuda:
        out["peak_cuda_mb"] = (torch.cuda.max_memory_allocated() - base_cuda) / 2**20
    else:  # peak resident memory of training steps, above the model-ready process
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base_rss
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--only", help=argparse.SUPPRESS)  # internal: run one strategy, print its JSON
    args = p.parse_args()
    if args.only:
        print(json.dumps(measure(args.only, args.steps, args.frames, args.batch, args.device)))
        return 0
    from videollm.bench.provenance import run_record

    run = run_record()  # machine, date, command, load average at the start
    results = {}
    for name in STRATEGIES:
        cmd = [sys.executable, __file__, "--only", name, *sys.argv[1:]]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode:
            print(out.stderr, file=sys.stderr)
            return 1
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    base = results["frozen"]
    memory = "peak_cuda_mb" if "peak_cuda_mb" in base else "peak_rss_mb"
    print(f"{'strategy':22} {'trainable':>10} {'saved act MB':>13} {memory:>13} {'step s':>8} {'cpu s':>8}")
    for name, r in results.items():
        print(
            f"{name:22} {r['trainable_params']:>10,} {r['activation_mb']:>13.1f} {r[memory]:>13.1f} "
            f"{r['step_s']:>8.3f} {r['cpu_s_per_step']:>8.3f}"
        )
    side = results["side"]
    savings = {
        adapter: {
            "activation_saving": 1 - side["activation_mb"] / results[adapter]["activation_mb"],
            "time_saving": 1 - side["step_s"] / results[adapter]["step_s"],
            "cpu_time_saving": 1 - side["cpu_s_per_step"] / results[adapter]["cpu_s_per_step"],
        }
        for adapter in ("adapter (st_adapter)", "adapter (mamba)")
    }
    for adapter, s in savings.items():
        print(
            f"side vs {adapter}: {100 * s['activation_saving']:.0f} % less saved activation, "
            f"{100 * s['time_saving']:.0f} % less time per step ({100 * s['cpu_time_saving']:.0f} % CPU time)"
        )
    record = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    record[args.device.split(":")[0]] = {
        "setup": {
            "vision": VISION,
            "text": TEXT,
            "image_size": 64,
            "patch_size": 8,
            "frames": args.frames,
            "batch": args.batch,
            "steps": args.steps,
        },
        **run,
        "results": results,
        "side_savings": savings,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
