"""How many tokens a video costs the LLM: connector tokens plus the newlines the model appends.

Pure functions of the config (no model, no weights): the processor expands each `<video>`
placeholder to `video_num_tokens(config, T)` copies, the vLLM plugin does the same, and the model's
features must come out at exactly that count. `check_fits_context` turns "the prompt is longer than
the LM can attend to" into an error that says which knob to turn.
"""

from __future__ import annotations

from typing import Any

from videollm.model.connectors import DEFAULT, ConnectorConfig, num_tokens

NEWLINES = ("video", "frame", "none")


def frame_grid(vision_config: Any) -> tuple[int, int]:
    """(h, w) of one frame's patch grid: the square image the vision tower sees, cut into patches."""
    side = vision_config.image_size // vision_config.patch_size
    return side, side


def num_video_tokens(
    connector: dict | ConnectorConfig, newline: str, num_frames: int, grid: tuple[int, int]
) -> int:
    """Tokens for one video of `num_frames` frames: connector tokens plus `newline` tokens."""
    if num_frames < 1:
        raise ValueError(
            "a video needs at least one frame, got 0; check the video decodes and the sampler's range"
        )
    cfg = ConnectorConfig.from_dict(connector)
    n = num_tokens(cfg, num_frames, *grid)
    if newline == "video":
        return n + 1
    if newline == "frame":
        if n % num_frames:
            raise ValueError(
                f"newline='frame' puts a newline after each frame's tokens, but connector {cfg.type!r} makes "
                f"{n} tokens from {num_frames} frames (not a whole number per frame); use newline 'video' or 'none'"
            )
        return n + num_frames
    if newline == "none":
        return n
    raise ValueError(f"newline={newline!r} is invalid; use one of {', '.join(NEWLINES)}")


def video_num_tokens(config: Any, num_frames: int) -> int:
    """Tokens one video of `num_frames` frames takes in the LLM input for a `VideoLLMConfig`."""
    return num_video_tokens(config.connector, config.newline, num_frames, frame_grid(config.vision_config))


def onevision_tokens(connector: dict | ConnectorConfig, newline: str, time_instruction: Any) -> bool:
    """Whether a video becomes exactly LLaVA-OneVision's tokens: default connector, one newline, no time text.

    Shared by the config and the processor: each saves in stock OneVision form only then.
    """
    return ConnectorConfig.from_dict(connector) == DEFAULT and newline == "video" and not time_instruction


def _max_frames(fits: Any, limit: int) -> int:
    """Largest frame count (≤ limit) for which `fits(frames)` holds, 0 if none (token counts grow with frames)."""
    best = 0
    lo, hi = 1, limit
    while lo <= hi:
        mid = (lo + hi) // 2
        if fits(mid):
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    return best


def check_fits_context(
    connector: dict | ConnectorConfig,
    newline: str,
    frames: list[int],
    grid: tuple[int, int],
    text_tokens: int,
    max_positions: int | None,
) -> None:
    """Raise a ValueError that names the fix when the videos plus `text_tokens` exceed `max_positions`."""
    if not max_positions or not frames:
        return
    video = [num_video_tokens(connector, newline, t, grid) for t in frames]
    total = sum(video) + text_tokens
    if total <= max_positions:
        return
    longest = max(frames)
    i = frames.index(longest)
    cfg = ConnectorConfig.from_dict(connector)
    frame_tokens = num_tokens(cfg, longest, *grid) + (longest if newline == "frame" else 0)
    head = f"{longest} frames × {frame_tokens / longest:g} tokens = {frame_tokens}"
    extra = []
    if newline == "video":
        extra.append("1 newline")
    if len(frames) > 1:
        extra.append(f"{sum(video) - video[i]} tokens of {len(frames) - 1} other video(s)")
    if text_tokens:
        extra.append(f"{text_tokens} text tokens")
    if extra:
        head += f" (+ {' + '.join(extra)} = {total})"
    others = total - video[i]

    def fits_frames(t: int) -> bool:
        return others + num_video_tokens(connector, newline, t, grid) <= max_positions

    fixes = []
    fit = _max_frames(fits_frames, longest - 1)
    if fit:
        fixes.append(f"--frames {fit}")
    if cfg.type == "spatial_pool":
        for stride in range(cfg.stride + 1, max(grid) + 1):
            pooled = ConnectorConfig.from_dict({**cfg.to_dict(), "stride": stride})
            if sum(num_video_tokens(pooled, newline, t, grid) for t in frames) + text_tokens <= max_positions:
                fixes.append(f"connector spatial_pool stride {stride}")
                break
    fix = " or ".join(fixes) if fixes else "a shorter prompt or an LM with a longer context"
    raise ValueError(f"{head} > max_position_embeddings {max_positions}; use {fix}")


__all__ = ["check_fits_context", "frame_grid", "num_video_tokens", "onevision_tokens", "video_num_tokens"]
