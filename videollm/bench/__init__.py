"""`videollm bench <name>`: the project's studies and benchmarks as commands.

`videollm bench study` runs the transfer-strategy study (`videollm.bench.study`); `videollm bench
report` writes the README's Results section from the recorded results (`videollm.bench.report`). Kept import-light:
each subcommand's module loads only when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand -> (module with `main(argv) -> int`, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "study": (
        "videollm.bench.study",
        "the transfer-strategy study: strategies × connectors on the synthetic world",
    ),
    "report": (
        "videollm.bench.report",
        "write README.md's Results section from benchmarks/results/*.json (--check: verify it)",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="videollm bench", description="Studies and benchmarks.")
    sub = parser.add_subparsers(dest="name", metavar="NAME")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS:
        build_parser().parse_args(argv or ["--help"])  # prints help / the error, and exits
        return 2
    module = importlib.import_module(SUBCOMMANDS[argv[0]][0])
    return int(module.main(argv[1:]) or 0)


__all__ = ["SUBCOMMANDS", "main"]
