"""`videollm model <subcommand>`: `info` (parameters and tokens) and `build` (a video model from an image-LLM)."""

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
        nargs="?",
        help=f"a videollm or LLaVA-family checkpoint folder, a config.json, a hub id, or a preset: "
        f"{', '.join(presets())} (default: $VIDEOLLM_MODEL, else the starter model)",
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

    build = sub.add_parser(
        "build",
        help="carry an image-LLM (LLaVA-1.5 / NeXT / OneVision, or vision encoder + LM) to video",
        description="Build a video model from an image-language model and save it (HF format, key layout "
        "that transformers and vLLM load). Every source weight is carried over.",
    )
    build.add_argument(
        "source",
        nargs="+",
        metavar="SOURCE",
        help="one LLaVA-family checkpoint (folder or hub id), or two: VISION_ENCODER CAUSAL_LM",
    )
    build.add_argument(
        "--connector", default=None, help="connector preset or type (default: LLaVA-OneVision's)"
    )
    build.add_argument(
        "--frames", type=int, default=None, help="default frames per video (config num_frames)"
    )
    build.add_argument("--out", required=True, help="folder to write the checkpoint to")
    return parser


def _build(args: argparse.Namespace) -> int:
    from videollm.model.builders import from_image_llm

    if len(args.source) > 2:
        print("videollm model build: give one checkpoint, or VISION_ENCODER CAUSAL_LM", file=sys.stderr)
        return 2
    source = args.source[0] if len(args.source) == 1 else tuple(args.source)
    overrides = {"num_frames": args.frames} if args.frames else {}
    try:
        model, processor = from_image_llm(source, connector=args.connector, **overrides)
    except (ValueError, OSError) as e:
        print(f"videollm model build: {e}", file=sys.stderr)
        return 2
    model.save_pretrained(args.out)
    processor.save_pretrained(args.out)
    print(f"saved {type(model).__name__} ({model.config.connector['type']} connector) to {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.subcommand == "build":
        return _build(args)
    from videollm.inference import default_model
    from videollm.model.info import format_info, model_info

    try:
        info = model_info(args.source or default_model(), frames=args.frames, train=args.train)
    except ValueError as e:
        print(f"videollm model info: {e}", file=sys.stderr)
        return 2
    print(json.dumps(info.to_dict(), indent=2) if args.json else format_info(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
