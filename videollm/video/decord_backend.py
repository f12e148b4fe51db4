"""decord backend, driven with the one access pattern verified correct by frame counters.

decord 0.6.0 numbers its keyframes by decode order, so on open-GOP streams (keyframes followed by
frames shown before them) its `get_batch`, `seek_accurate`, `__getitem__` and even `skip_frames`
return frames a few positions off. On closed-GOP streams `seek(keyframe)` + `skip_frames` +
`next` is exact (skipped frames are decoded but not converted to RGB). So: PyAV's index (which
it builds anyway to check limits) says whether the keyframes we need are closed; if they are we
seek to them, otherwise we read the stream sequentially with `next()` only. decord cannot skip
non-reference frames the way the PyAV backend does, so this backend decodes more frames for
the same request (see benchmarks/decode.py).
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np

from videollm.video.pyav_backend import PyAVReader
from videollm.video.sources import Deadline, Media
from videollm.video.types import VideoError


class DecordReader:
    backend = "decord"

    def __init__(self, media: Media, probe: PyAVReader, deadline: Deadline):
        import decord

        decord.logging.set_level(decord.logging.ERROR)
        self.name, self.probe, self.deadline = media.name, probe, deadline
        self.version = decord.__version__
        source = str(media.path) if media.path is not None else io.BytesIO(media.data)
        try:
            self.reader = decord.VideoReader(source, ctx=decord.cpu(0), num_threads=0)
        except decord.DECORDError as e:
            raise VideoError(
                f"decord cannot open it ({str(e).splitlines()[0]}); try backend='pyav'",
                source=media.name,
                status=415,
            ) from None
        if len(self.reader) != probe.info.num_frames:
            raise VideoError(
                f"decord counts {len(self.reader)} frames where FFmpeg's index has "
                f"{probe.info.num_frames}; use backend='pyav' for this file",
                source=media.name,
                status=415,
            )

    @property
    def info(self):
        return self.probe.info

    def close(self) -> None:
        self.reader = None  # frees decord's decoder threads now rather than at garbage collection
        self.probe.close()

    def keyframes_closed(self, keys: np.ndarray) -> bool:
        return self.probe.keyframes_closed(keys)

    def read(self, targets: np.ndarray, *, keyframes_only: bool = False) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (frame index, RGB frame) for each of the sorted, distinct `targets`."""
        import decord

        try:
            yield from self._read(targets, keyframes_only)
        except decord.DECORDError as e:
            raise VideoError(
                f"decord failed while decoding ({str(e).splitlines()[0]}); the video data may be "
                "corrupt, or try backend='pyav'",
                source=self.name,
            ) from None

    def _owners(self, targets: np.ndarray, keyframes_only: bool) -> np.ndarray:
        """The keyframe each target is decoded from (itself in keyframe mode)."""
        if keyframes_only:
            return targets
        keys = self.info.keyframes
        return keys[np.clip(np.searchsorted(keys, targets, side="right") - 1, 0, None)]

    def _read(self, targets: np.ndarray, keyframes_only: bool) -> Iterator[tuple[int, np.ndarray]]:
        closed = self.probe.keyframes_closed(self._owners(targets, keyframes_only))
        owners = self._owners(targets, keyframes_only)  # the check may have completed the index
        position = 0  # index of the frame `next()` returns; a fresh reader starts at 0
        for target, owner in zip(targets.tolist(), owners.tolist(), strict=True):
            self.deadline.check(self.name)
            if closed and not owner <= position <= target:
                self.reader.seek(owner)
                position = owner
            if target > position:  # sequential reads: next() only, skip_frames is wrong there
                if closed:
                    self.reader.skip_frames(target - position)
                else:
                    for _ in range(target - position):
                        self.reader.next()
                        if _ % 256 == 255:
                            self.deadline.check(self.name)
            frame = self.reader.next().asnumpy()
            position = target + 1
            yield target, frame
