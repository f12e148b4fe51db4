"""`videollm model <subcommand>`: model tools (`info` now; `build` joins later)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    from videollm.model.info import PARTS, presets

    parser = argparse.ArgumentParser(prog="videollm model", description="Model tools.")
    sub = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    info = sub.add_parser(
        "info",
        help="parameters per part and tokens per video, from a config (built on the meta device)",
        description="Parameters per part (trainable vs frozen) and tokens per frame / per video. "
        "The model is built from its config with no weights, so real-size models take a second.",
    )
    info.add_argument(
        "source",
        metavar="PATH_OR_CONFIG",
        help=f"a videollm or LLaVA-family checkpoint folder, a config.json, a hub id, or a preset: "
        f"{', '.join(presets())}",
    )
    info.add_argument(
        "--frames", type=int, nargs="+", default=[8, 16, 32], help="frame counts (default: 8 16 32)"
    )
    info.add_argument(
        "--train",
        nargs="+",
        choices=PARTS,
        default=None,
        metavar="PART",
        help=f"the parts that train; the others count as frozen (default: all). Parts: {', '.join(PARTS)}",
    )
    info.add_argument("--json", action="store_true", help="print the numbers as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from videollm.model.info import format_info, model_info

    try:
        info = model_info(args.source, frames=args.frames, train=args.train)
    except ValueError as e:
        print(f"videollm model info: {e}", file=sys.stderr)
        return 2
    print(json.dumps(info.to_dict(), indent=2) if args.json else format_info(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
