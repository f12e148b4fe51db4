"""`videollm data ...`: data tools. `synth` renders the synthetic video world (videollm.data.synthetic)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _synth_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="render the synthetic video world: clips, QA, captions, training and benchmark files",
        description=(
            "Render seeded splits of small H.264 clips of moving, appearing, disappearing and "
            "colour-changing shapes, with static and temporal questions and captions, into OUT/train and "
            "OUT/test: LLaVA training JSON (align.json, instruct.json), our manifests "
            "(qa.jsonl, image_qa.jsonl, captions.jsonl, scenes.jsonl) and MSVD-QA, Video-ChatGPT, MVBench "
            "and MSR-VTT files in their official formats. Same arguments, same bytes."
        ),
    )
    p.add_argument("--out", required=True, help="output directory (new, empty, or a world rendered before)")
    p.add_argument("--num-videos", type=int, default=100, help="clips in the train split (default 100)")
    p.add_argument(
        "--num-test-videos",
        type=int,
        default=None,
        help="clips in the held-out test split (default: a fifth, ≥ 1)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="world seed: a new seed gives a fresh world (default 0)"
    )
    p.add_argument("--frames", type=int, default=16, help="frames per clip (default 16)")
    p.add_argument("--size", type=int, default=64, help="frame width and height in pixels, even (default 64)")
    p.add_argument("--fps", type=float, default=8.0, help="frame rate of the clips (default 8)")
    p.add_argument(
        "--counter",
        action="store_true",
        help="stamp a machine-readable frame counter in each frame's top-left corner",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="videollm data", description="Data tools.")
    sub = parser.add_subparsers(dest="tool", metavar="TOOL", required=True)
    _synth_parser(sub)
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))

    from videollm.data.synthetic import render_world

    try:
        world = render_world(
            args.out,
            num_videos=args.num_videos,
            seed=args.seed,
            frames=args.frames,
            size=args.size,
            counter=args.counter,
            num_test_videos=args.num_test_videos,
            fps=args.fps,
            log=print,
        )
    except ValueError as e:
        print(f"videollm data synth: error: {e}", file=sys.stderr)
        return 2
    print(
        f"synthetic world (seed {world.seed}, {world.frames} frames of {world.size}×{world.size} at {world.fps:g} fps) → {world.root}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
