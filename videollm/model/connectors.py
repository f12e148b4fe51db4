"""Connectors: the video-token strategy — per-frame visual tokens → the tokens the LLM sees.

Contract shared by every connector (the model, the processor and the vLLM plugin rely on it):

- `ConnectorConfig` is a plain dataclass stored in `VideoLLMConfig.connector` as a dict.
- `build_connector(cfg, vision_dim, text_dim)` returns a `Connector` module.
- `Connector.stage` is "pre" (runs on vision-encoder features, before the projector; its output
  dim is `vision_dim`) or "post" (runs on projected features; output dim `text_dim`).
- `Connector.forward(x, timestamps=None)`: x is one video's features, T×h×w×D (frame-major grid),
  timestamps a length-T float tensor (seconds) or None. Returns N×D, N == `num_tokens(T, h, w)`.
- `num_tokens(cfg, num_frames, grid_h, grid_w) -> int` is pure (no module, no weights) so the
  processor can expand placeholders without building the model. Newline / separator tokens that
  the model appends (config `newline`) are counted by the model's `video_num_tokens`, not here.
"""

# Filled in by the connectors work (issue #3).
