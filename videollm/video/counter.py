"""A frame counter drawn into pixels, so tests can check which source frame a decoder returned.

The counter is a 4×4 grid of black/white cells in the top-left corner: 15 bits of the frame index
(least significant bit first, row-major) plus one even-parity cell. The grid spans a quarter of the
frame's short side (cells of short_side/16 px: 4 px at 64 px, 22 px at 360p), so it survives H.264
compression (flat, full-contrast blocks), 4:2:0 chroma subsampling (it is grey) and any resize that
keeps the aspect ratio (its geometry is relative to the frame size). `read_counter` refuses frames
where a cell is not clearly black or white or the parity fails, instead of guessing.
"""

from __future__ import annotations

import numpy as np

GRID = 4
NUM_BITS = GRID * GRID - 1  # data bits; the last cell is parity
MAX_INDEX = 2**NUM_BITS - 1
MIN_SHORT_SIDE = 32  # below this a cell is under 2 px and compression smears it

# A cell's mean (0-255) must be this far from mid-grey to count as a clean black or white.
_MARGIN = 48


def _edges(height: int, width: int) -> np.ndarray:
    """Pixel edges of the grid's rows/columns (the grid is square: both use the short side)."""
    short = min(height, width)
    if short < MIN_SHORT_SIDE:
        raise ValueError(
            f"frame {height}×{width} is too small for a frame counter: short side must be ≥ {MIN_SHORT_SIDE} px"
        )
    return np.round(np.arange(GRID + 1) * short / (GRID * GRID)).astype(int)


def _bits(index: int) -> list[int]:
    data = [(index >> k) & 1 for k in range(NUM_BITS)]
    return [*data, sum(data) % 2]


def draw_counter(frame: np.ndarray, index: int) -> np.ndarray:
    """Return a copy of `frame` (uint8 H×W×3) with `index` encoded in its top-left corner."""
    if not 0 <= index <= MAX_INDEX:
        raise ValueError(f"frame counter index must be in [0, {MAX_INDEX}], got {index}")
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be uint8 H×W×3, got {frame.dtype} {tuple(frame.shape)}")
    out = frame.copy()
    e = _edges(*frame.shape[:2])
    for k, bit in enumerate(_bits(index)):
        r, c = divmod(k, GRID)
        out[e[r] : e[r + 1], e[c] : e[c + 1]] = 255 if bit else 0
    return out


def read_counter(frame: np.ndarray) -> int:
    """Decode the index drawn by `draw_counter`; ValueError when the pattern is absent or damaged."""
    if frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"frame must be H×W×3, got {tuple(frame.shape)}")
    e = _edges(*frame.shape[:2])
    grey = frame.astype(np.float32).mean(axis=-1)
    bits = []
    for k in range(GRID * GRID):
        r, c = divmod(k, GRID)
        # Sample the cell's centre half: its borders blur into the neighbours under compression.
        y0, y1, x0, x1 = e[r], e[r + 1], e[c], e[c + 1]
        dy, dx = (y1 - y0) // 4, (x1 - x0) // 4
        value = float(grey[y0 + dy : y1 - dy, x0 + dx : x1 - dx].mean())
        if abs(value - 127.5) < _MARGIN:
            raise ValueError(f"frame counter cell {k} is ambiguous (mean {value:.0f}): no counter here?")
        bits.append(int(value > 127.5))
    if sum(bits[:NUM_BITS]) % 2 != bits[NUM_BITS]:
        raise ValueError("frame counter parity check failed: damaged or absent counter")
    return sum(bit << k for k, bit in enumerate(bits[:NUM_BITS]))
