"""An on-disk cache of decoded frames, so epochs after the first skip video decoding.

Decoding dominates the data cost of video training on CPUs; the frames a sampler picks from a file
never change, so they are stored once per (file identity, sampler) as an uncompressed .npz. The key
includes the file's size and mtime, so an edited video is decoded again. Writes go to a temporary
file renamed into place, so concurrent DataLoader workers and ranks never read a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from videollm.video.sampling import FrameSampler
    from videollm.video.types import Video

_SCALARS = (
    "fps",
    "duration",
    "num_source_frames",
    "backend",
    "backend_version",
    "source",
    "max_timestamp_error",
)


class FrameCache:
    """Decoded frames under `root`, keyed by file identity and sampler."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0

    def key(self, path: str, sampler: FrameSampler) -> str:
        st = os.stat(path)
        ident = {
            "path": os.path.realpath(path),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            **asdict(sampler),
        }
        return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()

    def entry(self, path: str, sampler: FrameSampler) -> Path:
        k = self.key(path, sampler)
        return self.root / k[:2] / f"{k}.npz"

    def get(self, path: str, sampler: FrameSampler) -> Video | None:
        entry = self.entry(path, sampler)
        if not entry.is_file():
            return None
        from videollm.video.types import Video

        with np.load(entry, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return Video(frames=z["frames"], timestamps=z["timestamps"], indices=z["indices"], **meta)

    def put(self, path: str, sampler: FrameSampler, video: Video) -> None:
        entry = self.entry(path, sampler)
        entry.parent.mkdir(parents=True, exist_ok=True)
        meta = json.dumps({k: getattr(video, k) for k in _SCALARS})
        fd, tmp = tempfile.mkstemp(dir=entry.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(
                    f, frames=video.frames, timestamps=video.timestamps, indices=video.indices, meta=meta
                )
            os.replace(tmp, entry)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_or_decode(self, path: str, sampler: FrameSampler) -> Video:
        video = self.get(path, sampler)
        if video is not None:
            self.hits += 1
            return video
        from videollm.video import load_video

        self.misses += 1
        video = load_video(path, sampler=sampler)
        self.put(path, sampler, video)
        return video


__all__ = ["FrameCache"]
