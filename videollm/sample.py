"""The bundled sample video: one held-out clip of the synthetic world, shipped in the package.

`videollm demo` asks about it, so the README's first command needs no rendering step and no
download. It is clip `index` of the *test* split of world seed 7 (the starter trains on seed 0 and
is scored on seed 1234), 16 frames of 64×64 px at 8 fps as `videollm data synth` writes them, with
its questions, answers and caption from the same `make_item` in `assets/sample.json`.

Regenerate (deterministic; same encoder build, same bytes) or check the shipped files:

    python -m videollm.sample [--out DIR] [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ASSETS = Path(__file__).parent / "assets"
VIDEO_FILE = "sample.mp4"
INFO_FILE = "sample.json"
SEED, SPLIT, FRAMES, SIZE, FPS = 7, "test", 16, 64, 8.0
MAX_SEARCH = 100  # clips looked at for one with both a static and a temporal question


@dataclass(frozen=True)
class Sample:
    """The sample on disk: its video file and what the world says about it (`sample.json`)."""

    video: Path
    info: dict[str, Any]

    @property
    def questions(self) -> list[dict[str, Any]]:
        return self.info["questions"]

    @property
    def caption(self) -> str:
        return self.info["caption"]

    def first_of_each_type(self) -> list[dict[str, Any]]:
        """The first static and the first temporal question: the pair the demo asks."""
        firsts: dict[str, dict[str, Any]] = {}
        for q in self.questions:
            firsts.setdefault(q["type"], q)
        return [firsts[t] for t in ("static", "temporal") if t in firsts]


def pick_index(seed: int = SEED, split: str = SPLIT) -> int:
    """The first clip of the split that has both a static and a temporal question."""
    from videollm.data.synthetic import make_item

    for index in range(MAX_SEARCH):
        item, _ = make_item(seed, split, index, FRAMES, SIZE, FPS)
        if {q.type for q in item.questions} >= {"static", "temporal"}:
            return index
    raise RuntimeError(f"no clip among the first {MAX_SEARCH} of seed {seed} {split} has both question types")


def make_sample() -> tuple[dict[str, Any], np.ndarray]:
    """`sample.json`'s content and the clip's rendered pixels (uint8 T×H×W×3)."""
    from videollm.data.synthetic import make_item

    index = pick_index()
    item, pixels = make_item(SEED, SPLIT, index, FRAMES, SIZE, FPS)
    info = {
        "generator": "videollm.sample (videollm.data.synthetic.make_item)",
        "video": VIDEO_FILE,
        "video_id": item.video_id,
        "seed": SEED,
        "split": SPLIT,
        "index": index,
        "num_frames": item.num_frames,
        "size": item.size,
        "fps": item.fps,
        "duration": item.duration,
        "caption": item.captions[0],
        "questions": [
            {
                "type": q.type,
                "qtype": q.qtype,
                "question": q.question,
                "answer": q.answer,
                "answer_sentence": q.sentence,
                "candidates": list(q.candidates),
            }
            for q in item.questions
        ],
    }
    return info, pixels


def write_sample(out: str | Path = ASSETS) -> Sample:
    """Render the sample into `out` (default: the package's assets folder)."""
    from videollm.data.synthetic import write_mp4

    out = Path(out)
    info, pixels = make_sample()
    out.mkdir(parents=True, exist_ok=True)
    write_mp4(pixels, out / VIDEO_FILE, FPS)
    (out / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return Sample(out / VIDEO_FILE, info)


def load_sample(folder: str | Path = ASSETS) -> Sample:
    folder = Path(folder)
    video, info = folder / VIDEO_FILE, folder / INFO_FILE
    for path in (video, info):
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: the bundled sample is missing; reinstall videollm or run `python -m videollm.sample`"
            )
    return Sample(video, json.loads(info.read_text(encoding="utf-8")))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m videollm.sample", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ASSETS, help=f"folder to write (default: {ASSETS})")
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the files in --out differ from a fresh render",
    )
    args = p.parse_args(argv)
    if args.check:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            write_sample(tmp)
            stale = [
                name
                for name in (VIDEO_FILE, INFO_FILE)
                if not (args.out / name).is_file()
                or (args.out / name).read_bytes() != (Path(tmp) / name).read_bytes()
            ]
        print(
            f"{args.out}: " + (f"differs from a fresh render: {', '.join(stale)}" if stale else "up to date")
        )
        return 1 if stale else 0
    sample = write_sample(args.out)
    info = sample.info
    print(f"wrote {sample.video} and {INFO_FILE}: {info['video_id']} ({len(info['questions'])} questions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
