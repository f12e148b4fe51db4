"""`videollm <command>`: one entry point for the three jobs (serve/chat, train/export, eval) and tools.

Each command's implementation lives in the package that owns the concept; this module only parses
the first word and hands the remaining arguments over, so `videollm X --help` is X's own help.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

# command -> (module with `main(argv) -> int`, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("videollm.serve.cli", "serve an OpenAI-compatible video chat endpoint (vLLM or transformers)"),
    "chat": ("videollm.serve.chat", "chat with a video in the terminal (local model or endpoint)"),
    "train": ("videollm.train.cli", "instruction-tune a video model from a YAML recipe (DeepSpeed)"),
    "export": ("videollm.train.export", "export a training run to an HF checkpoint (LoRA merged)"),
    "eval": ("videollm.eval.cli", "score a model on video-QA and captioning benchmarks"),
    "data": ("videollm.data.cli", "data tools: render the synthetic video world, validate datasets"),
    "model": ("videollm.model.cli", "model tools: build from an image-LLM, inspect parameters and tokens"),
    "bench": ("videollm.bench", "benchmarks and the transfer-strategy study"),
    "demo": ("videollm.demo", "the README's main job on the offline default"),
}


def _load(command: str) -> Callable[[Sequence[str]], int]:
    module_name, _ = COMMANDS[command]
    return importlib.import_module(module_name).main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="videollm",
        description="Image-language models turned into video assistants: serve, train, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"videollm {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _version() -> str:
    from videollm import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv or ["--help"])  # prints help / error and exits
        return 2
    command, rest = argv[0], argv[1:]
    return int(_load(command)(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
