"""`videollm demo`: the README's main job on the offline default.

Renders a few clips of the synthetic world, decodes one with both decoders through the sampler that
training, serving and evaluation share, and shows what the world asks about it. No network, no
weights: it runs on a fresh machine right after `make install`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

import numpy as np

from videollm.data.synthetic import render_world
from videollm.paths import cache_dir
from videollm.video import BACKENDS, FrameSampler, load_video


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="videollm demo", description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8, help="frames to sample from the clip")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    out = cache_dir("demo", f"world-s{args.seed}")
    world = render_world(
        out, num_videos=4, num_test_videos=2, seed=args.seed, frames=16, size=96, counter=True
    )
    test = world.splits["test"]
    print(f"synthetic world: {world.root} ({test.num_videos} test clips, {test.num_questions} questions)")

    record = json.loads(test.path("qa").read_text().splitlines()[0])
    clip = test.dir / record["video"]
    sampler = FrameSampler.uniform(args.frames)
    videos = {backend: load_video(clip, sampler, backend=backend) for backend in BACKENDS}
    v = videos["decord"]
    same = np.array_equal(videos["decord"].frames, videos["pyav"].frames)
    print(
        f"clip: {clip.name}  {v.num_source_frames} frames @ {v.fps:g} fps, {v.duration:.2f} s, {v.size[1]}×{v.size[0]} px"
    )
    print(f"sampled {v.num_frames} frames, indices {v.indices.tolist()}")
    print(f"timestamps (s): {', '.join(f'{t:.2f}' for t in v.timestamps)}")
    print(
        f"decord {videos['decord'].backend_version} and PyAV {videos['pyav'].backend_version} frames identical: {same}"
    )

    captions = [json.loads(line) for line in test.path("captions").read_text().splitlines()]
    caption = next(c for c in captions if c["video_id"] == record["video_id"])
    print(f"caption: {caption['caption']}")
    for line in test.path("qa").read_text().splitlines():
        qa = json.loads(line)
        if qa["video_id"] == record["video_id"]:
            print(f"  [{qa['type']:8s}] {qa['question']}  →  {qa['answer']}")
    return 0 if same else 1
