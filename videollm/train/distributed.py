"""Process setup for training on this stack, with the traps of CPU training solved in code.

Verified on transformers 5.19 / accelerate 1.15 / DeepSpeed 0.19 / torch 2.13+cpu:

- **Multi-process CPU training is not distributed unless `use_cpu=True`.** Under `torchrun
  --nproc_per_node 2` without a GPU, accelerate's process state comes up with backend gloo but
  `DistributedType.NO`: the Trainer does not wrap the model in DDP, so each rank trains its own copy
  with no gradient exchange (the ranks' weights drift apart), and DeepSpeed's batch-size arithmetic
  counts one process (`train_batch_size 2 != 2 * 1 * 2`). `ddp_backend="gloo"` alone does not fix
  it, and a `PartialState` created before `TrainingArguments` is reset by them. What does fix it:
  `use_cpu=True` (accelerate's `MULTI_CPU` / DeepSpeed over gloo), which `training_mode` sets
  whenever there is no CUDA device. The test checks both that ranks see disjoint samples and that
  their weights stay identical.
- **bf16 through the Trainer fails its device check on CPU** ("Your setup doesn't support
  bf16/gpu") unless `use_cpu=True`: `precision: auto` trains fp32 on CPU and bf16 on GPUs that
  support it; an explicit `precision: bf16` on CPU runs under CPU autocast (use_cpu is set).
- **ZeRO-3 partitions weights while they load** (`deepspeed.zero.Init` inside `from_pretrained`),
  reading the world size from DeepSpeed's own communicator, which the CPU path (accelerate's
  MULTI_CPU) never initialises: each rank then believes it is alone (`train_batch_size 4 != 2 * 1 *
  1`). `init_deepspeed_comm` attaches DeepSpeed to the existing gloo group first.
- **DeepSpeed JIT-compiles C++ ops on first use** (on CPU its shared-memory allreduce,
  `deepspeed_shm_comm`, ~1 min): the build cache goes under the project's `.cache/torch_extensions`
  (as the Makefile exports) unless TORCH_EXTENSIONS_DIR is set, so it is paid once per checkout.

The bitsandbytes 4-bit trap is solved where 4-bit models are made (strategies.qlora).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from videollm.train.recipe import RecipeError

LAUNCHER_VARS = ("LOCAL_RANK", "RANK", "WORLD_SIZE")


def project_cache_dir() -> Path:
    """`<checkout>/.cache` for a source checkout, else `~/.cache/videollm` (installed package)."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and os.access(root, os.W_OK):
        return root / ".cache"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "videollm"


def ensure_torch_extensions_dir() -> str:
    """Point DeepSpeed's JIT build cache at the project cache unless the user chose a folder."""
    if not os.environ.get("TORCH_EXTENSIONS_DIR"):
        os.environ["TORCH_EXTENSIONS_DIR"] = str(project_cache_dir() / "torch_extensions")
    Path(os.environ["TORCH_EXTENSIONS_DIR"]).mkdir(parents=True, exist_ok=True)
    return os.environ["TORCH_EXTENSIONS_DIR"]


def init_deepspeed_comm() -> None:
    """Attach deepspeed.comm to the process group accelerate created (no-op when already attached)."""
    import deepspeed.comm as dist

    if not dist.is_initialized():
        dist.init_distributed(
            dist_backend="gloo" if not torch.cuda.is_available() else "nccl", auto_mpi_discovery=False
        )


def launched_distributed() -> bool:
    """True inside a torchrun / deepspeed launcher process with more than one rank."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


@dataclass(frozen=True)
class TrainingMode:
    """The TrainingArguments fields that depend on the machine."""

    use_cpu: bool
    bf16: bool
    fp16: bool
    ddp_backend: str | None

    def as_kwargs(self) -> dict:
        return {
            "use_cpu": self.use_cpu,
            "bf16": self.bf16,
            "fp16": self.fp16,
            "ddp_backend": self.ddp_backend,
        }


def training_mode(precision: str, cuda: bool | None = None) -> TrainingMode:
    """CPU: fp32 (auto), gloo, `use_cpu=True` (see the module docstring). GPU: bf16 when supported (auto)."""
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if not cuda:
        if precision == "fp16":
            raise RecipeError(
                "field 'precision': fp16 mixed precision needs a GPU; use precision=auto (fp32 on CPU), fp32 or bf16"
            )
        # gloo only under a launcher: a single process with a backend set asks for a process group.
        backend = "gloo" if launched_distributed() else None
        return TrainingMode(use_cpu=True, bf16=precision == "bf16", fp16=False, ddp_backend=backend)
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return TrainingMode(use_cpu=False, bf16=precision == "bf16", fp16=precision == "fp16", ddp_backend=None)


__all__ = [
    "TrainingMode",
    "ensure_torch_extensions_dir",
    "init_deepspeed_comm",
    "launched_distributed",
    "project_cache_dir",
    "rank",
    "training_mode",
]
