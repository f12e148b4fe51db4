"""Helpers for the serving tests: tiny servable checkpoints, real mp4 clips, servers on 127.0.0.1.

Tiny models use an LM head size of 32: vLLM's CPU attention kernels take head sizes 32, 64, 80,
96, ... only (16, the tiny builder's default, makes its engine die on the first request).
"""

from __future__ import annotations

import base64
import contextlib
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from videollm.serve import launch
from videollm.serve.launch import free_port, stop_server, wait_ready  # noqa: F401  (the one launcher)

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable

SERVABLE_TEXT = {"num_attention_heads": 2, "num_key_value_heads": 1}  # head size 64 / 2 = 32


def save_tiny(path: Path, connector: str | dict | None = None, **overrides) -> Path:
    """A tiny random SigLIP + Qwen2 video model saved (with its processor) at `path`."""
    from videollm.model import tiny

    kwargs = {"text_config": SERVABLE_TEXT, **overrides}
    if connector is not None:
        kwargs["connector"] = connector
    model, processor = tiny(vision="siglip", lm="qwen2", **kwargs)
    import torch

    with torch.no_grad():  # random weights large enough that different inputs give different tokens
        for p in model.parameters():
            p.normal_(0.0, 0.5)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def clip_frames(num: int = 24, height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """A moving bright block over a colour ramp: consecutive frames differ, so sampling matters."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 60, size=(height, width, 3), dtype=np.uint8)
    frames = np.repeat(base[None], num, axis=0)
    for i in range(num):
        frames[i, :, :, 0] = (i * 255) // max(1, num - 1)
        x = (i * (width - 12)) // max(1, num - 1)
        frames[i, height // 4 : height // 4 + 12, x : x + 12] = 255
    return frames


def write_clip(path: Path, num: int = 24, fps: float = 8.0, **kwargs) -> Path:
    from videollm.video.encode import write_video

    write_video(path, clip_frames(num, **kwargs), fps=fps, gop=8)
    return path


def data_url(path: Path, mime: str = "video/mp4") -> str:
    return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode()


def start_server(argv: list[str], port: int, log: Path, env: dict | None = None) -> subprocess.Popen:
    """`videollm serve ARGV` on 127.0.0.1:port in a new process group, offline, output to `log`."""
    return launch.start_server(
        argv, port, log, env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    )


def video_body(url, model="tiny", **extra):
    return {
        "model": model,
        "max_tokens": 2,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "video_url", "video_url": {"url": url}}, {"type": "text", "text": "?"}],
            }
        ],
        **extra,
    }


def bad_requests(
    media: Path, tmp: Path, clip: Path, model: str, engine: str
) -> list[tuple[str, dict | bytes, int, str]]:
    """(name, body, status, words in the message) for each bad input of the issue; the same on both engines
    except where vLLM answers itself (it serves n > 1, and words its context error its own way)."""
    from media import with_unknown_codec, write_audio_only, write_counter_video, write_zero_frame_mp4

    good = clip.read_bytes()
    (media / "empty.mp4").write_bytes(b"")
    (media / "notes.mp4").write_text("this is a text file, not a video\n" * 20)
    (media / "truncated.mp4").write_bytes(good[: len(good) // 2])
    (media / "unknown_codec.mp4").write_bytes(with_unknown_codec(good))
    write_audio_only(media / "audio.mp4")
    write_zero_frame_mp4(media / "zero.mp4")
    (tmp / "outside.mp4").write_bytes(good)
    big = write_counter_video(media / "big.mp4", num_frames=300, height=96, width=160, fps=30, gop=1)
    long = write_clip(media / "long.mp4", num=50, fps=2)  # 25 s > 20 s limit
    wide = write_clip(media / "wide.mp4", num=4, height=240, width=400)  # over 320×240 pixels
    assert big.stat().st_size > 200_000
    return [
        ("corrupt mp4 (truncated)", video_body(data_url(media / "truncated.mp4"), model), 400, "moov"),
        ("empty file", video_body(data_url(media / "empty.mp4"), model), 400, ""),
        ("text file named .mp4", video_body(data_url(media / "notes.mp4"), model), 415, ""),
        ("unsupported codec", video_body(data_url(media / "unknown_codec.mp4"), model), 415, ""),
        ("audio only", video_body(data_url(media / "audio.mp4"), model), 415, ""),
        ("zero frames", video_body(f"file://{media}/zero.mp4", model), 400, ""),
        ("bad base64", video_body("data:video/mp4;base64,@@not base64@@", model), 400, "base64"),
        ("over the byte limit", video_body(data_url(big), model), 413, ""),
        ("over the duration limit", video_body(data_url(long), model), 413, "duration"),
        ("over the pixel limit", video_body(data_url(wide), model), 413, "pixels"),
        (
            "over the frame limit",
            video_body(data_url(clip), model, mm_processor_kwargs={"num_frames": 64}),
            413,
            "limit",
        ),
        (
            "file:// outside the root",
            video_body(f"file://{tmp}/outside.mp4", model),
            400,
            "outside the allowed media root",
        ),
        ("file:// with ..", video_body(f"file://{media}/../outside.mp4", model), 400, "'..'"),
        (
            "http to a host not allowed",
            video_body("http://127.0.0.1:{port}/clip.mp4", model),
            400,
            "not an allowed media domain",
        ),
        ("malformed JSON", b'{"model": "m", "messages": [', 400, "not valid JSON"),
        ("unknown model", {**video_body(data_url(clip), model), "model": "gpt-9"}, 404, "gpt-9"),
        (
            "two videos",
            {
                "model": model,
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "video_url", "video_url": {"url": data_url(clip)}}] * 2,
                    }
                ],
            },
            400,
            "at most 1",
        ),
        (
            "prompt longer than the context",
            {"model": model, "messages": [{"role": "user", "content": "x" * 5000}]},
            400,
            "context",
        ),
    ] + (
        [("n=2", {**video_body(data_url(clip), model), "n": 2}, 400, "n=2")]
        if engine == "transformers"
        else []
    )


def run_bad_requests(base_url: str, api_key: str, cases: list, clip: Path) -> tuple[list[str], list[str]]:
    """Send each bad request (and a wrong API key); return the mismatches and the paths a local peer
    HTTP server saw (it must see none: URLs to hosts not allowed are refused before any request)."""
    import http.server
    import json
    import threading

    import httpx

    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(clip.read_bytes())

        def log_message(self, *args):
            pass

    peer = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=peer.serve_forever, daemon=True).start()
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    failures = []
    try:
        with httpx.Client(base_url=base_url, timeout=120, headers=headers) as h:
            for name, body, status, words in cases:
                if isinstance(body, dict):
                    body = json.dumps(body).replace("{port}", str(peer.server_port)).encode()
                r = h.post("/v1/chat/completions", content=body)
                try:
                    err = r.json().get("error")
                except ValueError:
                    err = None
                ok = (
                    r.status_code == status
                    and isinstance(err, dict)
                    and err.get("code") == status
                    and isinstance(err.get("message"), str)
                    and words in err["message"]
                )
                if not ok:
                    failures.append(f"{name}: {r.status_code} {r.text[:300]}")
            r = h.post(
                "/v1/chat/completions",
                json=video_body(data_url(clip)),
                headers={"Authorization": "Bearer no"},
            )
            if not (r.status_code == 401 and r.json().get("error", {}).get("code") == 401):
                failures.append(f"wrong API key: {r.status_code} {r.text[:300]}")
    finally:
        peer.shutdown()
    return failures, hits


@contextlib.contextmanager
def app_server(model_dir: Path, policy, api_key: str | None = None, name: str = "tiny", batch_size: int = 8):
    """The transformers engine's app on 127.0.0.1 (uvicorn in a thread): yields (base URL, generator)."""
    import threading

    import uvicorn

    import videollm  # noqa: F401
    from videollm.inference.batching import BatchedGenerator
    from videollm.model import VideoLLMForConditionalGeneration, VideoLLMProcessor
    from videollm.serve.app import create_app
    from videollm.serve.routes import ServeInfo

    model = VideoLLMForConditionalGeneration.from_pretrained(model_dir)
    generator = BatchedGenerator(
        model, VideoLLMProcessor.from_pretrained(model_dir), batch_size=batch_size, wait_s=0.05
    )
    info = ServeInfo(engine="transformers", model=name, policy=policy, api_key=api_key)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(generator, info), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the app server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", generator
    finally:
        server.should_exit = True
        thread.join(10)
        generator.close()
