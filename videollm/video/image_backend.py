"""Pillow backend for videos stored as images: animated GIFs and directories of numbered frames.

Every frame of these is a keyframe, so `keyframe` sampling equals `exact` here. A frame directory
has no frame rate of its own: the caller passes one (`frames_fps`, default 1.0).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from videollm.video.info import VideoInfo
from videollm.video.sources import FRAME_EXTENSIONS, Deadline, Media, check_frame_file
from videollm.video.types import VideoError

_NUMBERED = re.compile(r"^(.*?)(\d+)$")
_GIF_DEFAULT_DELAY_MS = 100  # what browsers show for a GIF frame delay of 0


def _rgb(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


class GifReader:
    backend = "pillow"

    def __init__(self, media: Media, deadline: Deadline):
        import PIL
        from PIL import Image

        self.name, self.deadline = media.name, deadline
        self.version = PIL.__version__
        try:
            self.image = Image.open(io.BytesIO(media.data) if media.data is not None else media.path)
            num_frames = getattr(self.image, "n_frames", 1)
            delays = []
            for i in range(num_frames):
                self.image.seek(i)
                delays.append(self.image.info.get("duration") or _GIF_DEFAULT_DELAY_MS)
        except (OSError, SyntaxError, ValueError) as e:
            raise VideoError(f"not a readable GIF ({e})", source=media.name, status=415) from None
        width, height = self.image.size
        self.info = VideoInfo(
            source=media.name,
            num_frames=num_frames,
            fps=1000.0 * num_frames / sum(delays),
            width=width,
            height=height,
            codec="gif",
            container="gif",
            keyframes=np.arange(num_frames, dtype=np.int64),
            open_gop=False,
        )

    def close(self) -> None:
        self.image.close()

    def keyframes_closed(self, keys: np.ndarray) -> bool:
        return True

    def read(self, targets: np.ndarray, *, keyframes_only: bool = False) -> Iterator[tuple[int, np.ndarray]]:
        for target in targets.tolist():
            self.deadline.check(self.name)
            try:
                self.image.seek(target)
                yield target, _rgb(self.image)
            except (OSError, ValueError) as e:
                raise VideoError(f"GIF frame {target} cannot be decoded ({e})", source=self.name) from None


def frame_files(directory: Path, name: str) -> list[Path]:
    """The numbered image files of a frame directory, in order; gaps and mixed names are errors."""
    numbered: dict[int, Path] = {}
    patterns = set()
    for path in directory.iterdir():
        if path.name.startswith(".") or path.suffix.lower() not in FRAME_EXTENSIONS:
            continue
        match = _NUMBERED.match(path.stem)
        if not match:
            raise VideoError(
                f"frame directory holds {path.name!r}, which is not numbered like 00001.jpg",
                source=name,
            )
        number = int(match.group(2))
        if number in numbered:
            raise VideoError(
                f"frame directory has two files for frame {number}: {numbered[number].name!r} and "
                f"{path.name!r}",
                source=name,
            )
        numbered[number] = path
        patterns.add((match.group(1), path.suffix.lower()))
    if not numbered:
        raise VideoError(
            f"directory has no frame images (numbered {'/'.join(FRAME_EXTENSIONS)} files)", source=name
        )
    if len(patterns) > 1:
        raise VideoError(
            f"frame directory mixes file name patterns {sorted(patterns)}; use one, like 00001.jpg",
            source=name,
        )
    numbers = sorted(numbered)
    expected = range(numbers[0], numbers[0] + len(numbers))
    if numbers != list(expected):
        missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
        prefix, suffix = patterns.pop()
        width = len(_NUMBERED.match(numbered[numbers[0]].stem).group(2))
        example = f"{prefix}{missing[0]:0{width}d}{suffix}"
        raise VideoError(
            f"frame directory has a gap: {len(missing)} frame(s) missing, first {example!r}; frames "
            "must be numbered consecutively",
            source=name,
        )
    return [numbered[n] for n in numbers]


class FrameDirReader:
    backend = "pillow"

    def __init__(self, media: Media, deadline: Deadline, *, fps: float, allowed_local_root=None):
        import PIL

        if not fps > 0:
            raise VideoError(f"frames_fps must be > 0, got {fps!r}", source=media.name)
        self.name, self.deadline, self.root = media.name, deadline, allowed_local_root
        self.version = PIL.__version__
        self.files = frame_files(media.path, media.name)
        first = self._open(0)
        self.size = first.size
        self.info = VideoInfo(
            source=media.name,
            num_frames=len(self.files),
            fps=float(fps),
            width=first.size[0],
            height=first.size[1],
            codec=(first.format or "image").lower(),
            container="frames",
            keyframes=np.arange(len(self.files), dtype=np.int64),
            open_gop=False,
        )

    def _open(self, index: int):
        from PIL import Image

        path = self.files[index]
        check_frame_file(path, self.root, f"{self.name}/{path.name}")
        try:
            return Image.open(path)
        except (OSError, SyntaxError, ValueError) as e:
            raise VideoError(
                f"frame {path.name!r} is not a readable image ({e})", source=self.name, status=415
            ) from None

    def close(self) -> None:
        pass

    def keyframes_closed(self, keys: np.ndarray) -> bool:
        return True

    def read(self, targets: np.ndarray, *, keyframes_only: bool = False) -> Iterator[tuple[int, np.ndarray]]:
        for target in targets.tolist():
            self.deadline.check(self.name)
            with self._open(target) as image:
                if image.size != self.size:
                    raise VideoError(
                        f"frame {self.files[target].name!r} is {image.size[0]}×{image.size[1]}, the "
                        f"first frame is {self.size[0]}×{self.size[1]}; all frames must be the same size",
                        source=self.name,
                    )
                try:
                    yield target, _rgb(image)
                except (OSError, SyntaxError, ValueError) as e:
                    raise VideoError(
                        f"frame {self.files[target].name!r} cannot be decoded ({e})", source=self.name
                    ) from None
