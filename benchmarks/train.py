"""Training benchmark: samples/s and peak memory per process for one tiny recipe run four ways —
a single process, DeepSpeed ZeRO-2 × 2 processes, ZeRO-3 × 2, and ZeRO-3 with optimizer and parameter
offload × 2 — all through `videollm train` exactly as users run it.

    .venv/bin/python benchmarks/train.py [--steps 30] [--batch-size 2] [--frames 4] [--repeats 2]

The synthetic world and the tiny base model are made once under benchmarks/cache/. Throughput is the
Trainer's own `train_samples_per_second` (all ranks' samples over the training loop's wall time),
the best of `--repeats` runs (other processes on a shared machine only ever slow a run down); every
configuration uses the same total number of threads (OMP_NUM_THREADS = cores / processes). Peak
memory is each process's peak resident set (CPU) or peak CUDA allocation (GPU), next to its resident
set before the model was loaded (the libraries alone: with a tiny model they dominate). The recipe is
the `full` strategy so every ZeRO stage has optimizer state, gradients and (ZeRO-3) parameters to
partition. DeepSpeed's JIT builds (its CPU communication op, and CPU Adam for offload) land in
.cache/torch_extensions and are paid before the first measured run. Prints a table and writes
benchmarks/results/train.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from videollm.bench.provenance import run_record, version

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = HERE / "cache" / "train"
RESULTS = HERE / "results" / "train.json"
CONFIGS = {
    "single": (1, None),
    "zero2x2": (2, "zero2.json"),
    "zero3x2": (2, "zero3.json"),
    "zero3_offloadx2": (2, "zero3_offload.json"),
}


def prepare() -> tuple[Path, Path]:
    """The synthetic world and the tiny base model (made once)."""
    world, base = CACHE / "world", CACHE / "base"
    if not (world / "world.json").is_file():
        from videollm.data.synthetic import render_world

        render_world(world, num_videos=16, frames=8, size=32, num_test_videos=1)
    if not (base / "config.json").is_file():
        from videollm.model import tiny

        model, processor = tiny()
        model.save_pretrained(base)
        processor.save_pretrained(base)
    return world, base


def recipe(world: Path, base: Path, out: Path, args: argparse.Namespace, deepspeed: str | None) -> dict:
    return {
        "name": f"bench-{out.name}",
        "model": {"base": str(base)},
        "strategy": "full",
        "data": {
            "files": [
                {"path": str(world / "train" / "instruct.json"), "weight": 1.0},
                {"path": str(world / "train" / "align.json"), "weight": 1.0},
            ]
        },
        "frames": {"num_frames": args.frames},
        "deepspeed": str(REPO / "train" / "deepspeed" / deepspeed) if deepspeed else None,
        "batch_size": args.batch_size,
        "lr": 1e-4,
        "max_steps": args.steps,
        "save_steps": 10**6,
        "log_steps": 10,
        "max_length": 1024,
        "output_dir": str(out),
    }


def run(name: str, world: Path, base: Path, args: argparse.Namespace) -> dict:
    nproc, deepspeed = CONFIGS[name]
    out = CACHE / "runs" / name
    if out.exists():
        import shutil

        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe(world, base, out, args, deepspeed)))
    env = {
        **os.environ,
        "TORCH_EXTENSIONS_DIR": os.environ.get(
            "TORCH_EXTENSIONS_DIR", str(REPO / ".cache" / "torch_extensions")
        ),
        "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // nproc)),
    }
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "videollm.cli", "train", str(path), "--nproc", str(nproc)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-4000:]}")
    info = json.loads((out / "videollm_run.json").read_text())
    metrics = info["metrics"]
    return {
        "config": name,
        "processes": nproc,
        "deepspeed": deepspeed,
        "steps": info["global_step"],
        "samples": info["global_step"] * args.batch_size * nproc,
        "samples_per_s": round(metrics["train_samples_per_second"], 3),
        "train_runtime_s": round(metrics["train_runtime"], 2),
        "wall_s_with_startup": round(wall, 1),
        "peak_memory_mb_per_process": info["peak_memory_mb"],
        "memory_before_model_mb_per_process": info["start_memory_mb"],
        "threads_per_process": int(env["OMP_NUM_THREADS"]),
        "train_loss": round(info["train_loss"], 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=2, help="per process")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2, help="runs per configuration; the fastest is kept")
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args()
    run = run_record()  # machine, date, command, load average at the start
    world, base = prepare()
    rows = []
    for name in args.configs:
        print(f"running {name} ...", flush=True)
        runs = [run(name, world, base, args) for _ in range(args.repeats)]
        r = max(runs, key=lambda x: x["samples_per_s"])
        r["samples_per_s_all_runs"] = [x["samples_per_s"] for x in runs]
        rows.append(r)
        print(
            f"  {r['samples_per_s']:8.2f} samples/s   peak {r['peak_memory_mb_per_process']} MB   "
            f"({r['train_runtime_s']} s training, {r['wall_s_with_startup']} s with start-up)",
            flush=True,
        )
    result = {
        "recipe": {
            "model": "videollm.model.tiny() (CLIP 32-dim + Llama 64-dim, 2 layers each)",
            "strategy": "full",
            "frames": args.frames,
            "batch_size_per_process": args.batch_size,
            "steps": args.steps,
        },
        **run,
        "versions": {"deepspeed": version("deepspeed")},
        "results": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'config':18} {'procs':>5} {'samples/s':>10} {'peak MB per process':>24}")
    for r in rows:
        print(
            f"{r['config']:18} {r['processes']:>5} {r['samples_per_s']:>10.2f} {r['peak_memory_mb_per_process']!s:>24}"
        )
    print(f"→ {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
