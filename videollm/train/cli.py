"""`videollm train RECIPE.yaml [key=value ...] [--nproc N] [--hostfile F]`.

One entry point for every launch: run directly it trains in this process, or, with `--nproc N > 1`,
re-launches itself under `torchrun --nproc_per_node N` (gloo on CPU, NCCL on GPUs); with
`--hostfile F` under DeepSpeed's multi-node launcher. Started by `torchrun` or `deepspeed` itself
(`python -m videollm.train.cli ...`), it sees the launcher's environment and just trains, so the
same command line works under any launcher.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Sequence

from videollm.train.distributed import launched_distributed

MODULE = "videollm.train.cli"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="videollm train",
        description="Instruction-tune a video model from a YAML recipe (see train/recipes/).",
        epilog="example: videollm train train/recipes/tiny.yaml lr=1e-4 lora.r=8 --nproc 2",
    )
    p.add_argument("recipe", help="recipe YAML file")
    p.add_argument(
        "overrides", nargs="*", metavar="key=value", help="recipe overrides (dotted keys: lora.r=8)"
    )
    p.add_argument(
        "--nproc", type=int, default=1, help="processes on this machine (re-launches under torchrun)"
    )
    p.add_argument("--hostfile", help="DeepSpeed hostfile for multi-node runs (re-launches under deepspeed)")
    p.add_argument("--master-port", type=int, default=None, help="rendezvous port (default: a free one)")
    p.add_argument(
        "--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS
    )  # deepspeed
    return p


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launcher_command(args: argparse.Namespace) -> list[str] | None:
    """The command that re-launches this one under torchrun / deepspeed, or None to run here."""
    rest = [args.recipe, *args.overrides]
    if launched_distributed():
        return None
    port = str(args.master_port or _free_port())
    if args.hostfile:
        cmd = [
            sys.executable,
            "-m",
            "deepspeed.launcher.runner",
            "--hostfile",
            args.hostfile,
            "--master_port",
            port,
        ]
        if args.nproc > 1:
            cmd += ["--num_gpus", str(args.nproc)]
        return [*cmd, "--module", MODULE, *rest]
    if args.nproc > 1:
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            str(args.nproc),
            "--master_port",
            port,
            "-m",
            MODULE,
            *rest,
        ]
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(list(sys.argv[1:] if argv is None else argv))
    if args.nproc < 1:
        print("videollm train: error: --nproc must be >= 1", file=sys.stderr)
        return 2
    if args.hostfile and not os.path.isfile(args.hostfile):
        print(f"videollm train: error: hostfile {args.hostfile} not found", file=sys.stderr)
        return 2

    from videollm.starter.train import is_starter_recipe

    if is_starter_recipe(args.recipe):  # a staged recipe (vision pretraining → align → finetune)
        from videollm.starter.train import main as train_starter

        return train_starter([args.recipe, *args.overrides])

    from videollm.data.llava import DataError, DataSource, load_records
    from videollm.train.recipe import RecipeError, load_recipe

    command = launcher_command(args)
    try:
        recipe = load_recipe(args.recipe, args.overrides)
        if command is not None:  # fail here, once, before spawning processes that would each report it
            for files in (recipe.data.files, recipe.data.eval_files):
                if files:
                    load_records([DataSource(f.path, f.media_root, f.weight) for f in files])
    except (RecipeError, DataError) as e:
        print(f"videollm train: error: {e}", file=sys.stderr)
        return 2
    if command is not None:
        return subprocess.call(command)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from videollm.train.trainer import train

    try:
        result = train(recipe)
    except (RecipeError, DataError) as e:
        print(f"videollm train: error: {e}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(
            f"trained {result.global_step} steps, loss {result.train_loss:.4f}, "
            f"{len(result.skipped)} over-long samples skipped → {result.output_dir}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
