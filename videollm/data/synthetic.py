"""The synthetic video world on disk: seeded splits of small H.264 clips with questions and captions,
written in our training format, our manifests and the official benchmark formats.

The world itself (scenes, rendering) is `videollm.data.world`; questions and answers are
`videollm.data.questions`; captions `videollm.data.captions`; file formats `videollm.data.formats`.
This module ties them together: `render_world` is what `videollm data synth` runs.

Splits are made by seed: clip i of split s is drawn from `SeedSequence(seed, spawn_key=(s, i))`, so
`train` and `test` of one seed never share a clip, a new seed gives a fresh world, and clip i does not
depend on how many clips are rendered. Same arguments → same bytes (x264 with one thread, bit-exact
muxing).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from videollm.data import formats
from videollm.data.captions import image_captions, video_captions
from videollm.data.questions import QA, answer, image_questions, video_questions
from videollm.data.world import FrameState, Scene, make_scene, render_scene, render_states, scene_states

__all__ = [
    "SPLITS",
    "SplitManifest",
    "VideoItem",
    "WorldManifest",
    "answer",
    "load_world",
    "make_item",
    "make_scene",
    "render_scene",
    "render_states",
    "render_world",
    "scene_states",
    "write_mp4",
]

SPLITS = ("train", "test")  # index = the split's spawn key
WORLD_FILE = "world.json"
FORMAT_VERSION = 1
MIN_FRAMES, MAX_FRAMES = 8, 512
MIN_SIZE, MAX_SIZE = 32, 1024
# Encoder settings: a low CRF keeps the flat colours of small shapes clean; no B-frames keeps decode
# order = display order. One thread and no global header make the bytes reproducible: measured with
# this PyAV/x264 build, with mp4's global-header flag the same frames encoded to different bytes in
# about 1 run in 10 (B-frames on); with in-band SPS/PPS (from which the mp4 muxer builds its avcC box)
# and one thread, 600 of 600 runs were identical.
X264 = {"crf": 16, "bframes": 0, "preset": "medium", "options": {"threads": "1", "flags": "-global_header"}}


@dataclass(frozen=True)
class VideoItem:
    """One rendered clip and everything said about it. Paths are relative to the split folder."""

    video_id: str
    split: str
    index: int
    video: str
    image: str  # one frame of the clip, for image-stage training
    image_frame: int
    num_frames: int
    fps: float
    size: int
    scene: Scene
    states: list[FrameState] = field(repr=False)
    questions: list[QA] = field(repr=False)
    image_questions: list[QA] = field(repr=False)
    captions: list[str] = field(repr=False)  # reference first, then paraphrases
    image_captions: list[str] = field(repr=False)

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


@dataclass(frozen=True)
class SplitManifest:
    name: str
    dir: Path
    num_videos: int
    num_questions: int
    num_static: int
    num_temporal: int
    files: dict[str, str]  # what → path relative to `dir`
    items: tuple[VideoItem, ...] = field(default=(), repr=False)  # empty when loaded from disk

    def path(self, what: str) -> Path:
        if what not in self.files:
            raise KeyError(
                f"split {self.name!r} has no {what!r} file; it has: {', '.join(sorted(self.files))}"
            )
        return self.dir / self.files[what]


@dataclass(frozen=True)
class WorldManifest:
    """What `render_world` wrote: the arguments, and per split its counts and files."""

    root: Path
    seed: int
    frames: int
    size: int
    fps: float
    counter: bool
    splits: dict[str, SplitManifest]

    def to_dict(self) -> dict:
        """`world.json`'s content: no absolute paths, so the same arguments give the same bytes."""
        return {
            "generator": "videollm.data.synthetic",
            "format_version": FORMAT_VERSION,
            "seed": self.seed,
            "frames": self.frames,
            "size": self.size,
            "fps": self.fps,
            "counter": self.counter,
            "splits": {
                name: {
                    "dir": s.dir.name,
                    "num_videos": s.num_videos,
                    "num_questions": s.num_questions,
                    "num_static": s.num_static,
                    "num_temporal": s.num_temporal,
                    "files": s.files,
                }
                for name, s in self.splits.items()
            },
        }


def load_world(root: str | Path) -> WorldManifest:
    """Read `world.json` of a rendered world (split items are not loaded: read the manifests)."""
    root = Path(root)
    path = root / WORLD_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no synthetic world here; render one with `videollm data synth --out {root}`"
        )
    d = json.loads(path.read_text(encoding="utf-8"))
    splits = {
        name: SplitManifest(
            name,
            root / s["dir"],
            s["num_videos"],
            s["num_questions"],
            s["num_static"],
            s["num_temporal"],
            s["files"],
        )
        for name, s in d["splits"].items()
    }
    return WorldManifest(root, d["seed"], d["frames"], d["size"], d["fps"], d["counter"], splits)


def video_rngs(seed: int, split: str, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent generators for a clip's scene and for its questions."""
    ss = np.random.SeedSequence(seed, spawn_key=(SPLITS.index(split), index))
    scene_ss, qa_ss = ss.spawn(2)
    return np.random.default_rng(scene_ss), np.random.default_rng(qa_ss)


def make_item(
    seed: int, split: str, index: int, frames: int, size: int, fps: float, counter: bool = False
) -> tuple[VideoItem, np.ndarray]:
    """Clip `index` of a split: its annotations and its pixels (uint8 T×size×size×3)."""
    scene_rng, qa_rng = video_rngs(seed, split, index)
    scene = make_scene(scene_rng)
    states = scene_states(scene, frames)
    pixels = render_states(states, size, counter=counter)
    video_id = f"synth_s{seed}_{split}_{index:05d}"
    image_frame = frames // 2
    item = VideoItem(
        video_id=video_id,
        split=split,
        index=index,
        video=f"videos/{video_id}.mp4",
        image=f"frames/{video_id}_t{image_frame:03d}.png",
        image_frame=image_frame,
        num_frames=frames,
        fps=fps,
        size=size,
        scene=scene,
        states=states,
        questions=video_questions(states, qa_rng),
        image_questions=image_questions(states[image_frame], qa_rng),
        captions=video_captions(states),
        image_captions=image_captions(states[image_frame]),
    )
    return item, pixels


def write_mp4(frames: np.ndarray, path: str | Path, fps: float) -> None:
    """Encode uint8 T×H×W×3 RGB frames as H.264 (yuv420p) mp4, reproducibly."""
    from videollm.video.encode import write_video

    if frames.ndim != 4 or frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(
            f"frames must be T×H×W×3 with even H and W (H.264 yuv420p), got {tuple(frames.shape)}"
        )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_video(path, frames, fps=fps, **X264)


def _save_png(frame: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame).save(path, format="PNG")


def check_arguments(
    num_videos: int, num_test_videos: int, seed: int, frames: int, size: int, fps: float
) -> None:
    """Raise ValueError naming the bad argument and the allowed range."""
    checks = [
        (num_videos >= 0, f"--num-videos must be ≥ 0, got {num_videos}"),
        (num_test_videos >= 0, f"--num-test-videos must be ≥ 0, got {num_test_videos}"),
        (
            num_videos + num_test_videos > 0,
            "nothing to render: --num-videos and --num-test-videos are both 0",
        ),
        (seed >= 0, f"--seed must be ≥ 0, got {seed}"),
        (
            MIN_FRAMES <= frames <= MAX_FRAMES,
            f"--frames must be in [{MIN_FRAMES}, {MAX_FRAMES}], got {frames}",
        ),
        (
            MIN_SIZE <= size <= MAX_SIZE and size % 2 == 0,
            f"--size must be an even number of pixels in [{MIN_SIZE}, {MAX_SIZE}] (H.264 yuv420p), got {size}",
        ),
        (0 < fps <= 240, f"--fps must be in (0, 240], got {fps}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def _prepare(out: Path) -> None:
    """Make `out` ready: new or empty, or a world rendered before (whose splits are replaced)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a directory")
    if out.is_dir() and any(out.iterdir()):
        if not (out / WORLD_FILE).is_file():
            raise ValueError(
                f"--out {out} is not empty and holds no synthetic world ({WORLD_FILE}); "
                "give a new or empty directory, or one rendered before"
            )
        for split in SPLITS:
            if (out / split).is_dir():
                shutil.rmtree(out / split)
        (out / WORLD_FILE).unlink()
    out.mkdir(parents=True, exist_ok=True)


def render_split(
    out: Path, seed: int, split: str, num_videos: int, frames: int, size: int, fps: float, counter: bool
) -> SplitManifest:
    """Render one split into `out` and write all its formats."""
    items = []
    for index in range(num_videos):
        item, pixels = make_item(seed, split, index, frames, size, fps, counter)
        write_mp4(pixels, out / item.video, fps)
        _save_png(pixels[item.image_frame], out / item.image)
        items.append(item)
    files = {"videos": "videos", "frames": "frames"}
    files |= formats.write_llava(out, items)
    files |= formats.write_manifests(out, items)
    files |= formats.write_msvd_qa(out, items, split)
    files |= formats.write_mvbench(out, items)
    files |= formats.write_msrvtt(out, items, split, seed)
    questions = [q for i in items for q in i.questions]
    static = sum(q.type == "static" for q in questions)
    return SplitManifest(
        split, out, len(items), len(questions), static, len(questions) - static, files, tuple(items)
    )


def render_world(
    out_dir: str | Path,
    num_videos: int = 100,
    seed: int = 0,
    frames: int = 16,
    size: int = 64,
    counter: bool = False,
    num_test_videos: int | None = None,
    fps: float = 8.0,
    log: Callable[[str], None] | None = None,
) -> WorldManifest:
    """Render `num_videos` training clips and `num_test_videos` held-out clips (default: a fifth,
    at least one) into `out_dir/train` and `out_dir/test`, each with every format, plus `world.json`.
    """
    if num_test_videos is None:
        num_test_videos = max(1, num_videos // 5)
    check_arguments(num_videos, num_test_videos, seed, frames, size, fps)
    out = Path(out_dir)
    _prepare(out)
    splits = {}
    for split, n in zip(SPLITS, (num_videos, num_test_videos), strict=True):
        if n == 0:
            continue
        start = time.perf_counter()
        splits[split] = s = render_split(out / split, seed, split, n, frames, size, fps, counter)
        if log:
            log(
                f"{split}: {s.num_videos} videos, {s.num_questions} questions "
                f"({s.num_static} static, {s.num_temporal} temporal) in {time.perf_counter() - start:.1f} s → {s.dir}"
            )
    world = WorldManifest(out, seed, frames, size, float(fps), counter, splits)
    (out / WORLD_FILE).write_text(json.dumps(world.to_dict(), indent=2) + "\n", encoding="utf-8")
    return world
