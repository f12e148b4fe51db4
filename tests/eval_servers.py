"""Real model servers for the evaluation tests: `videollm serve --engine transformers` on a tiny random
checkpoint, started with `videollm.serve.launch` (the launcher the demo and benchmarks use).

A tiny random model is a real video model and a real judge: it decodes the videos it is sent and
answers deterministically at temperature 0 — with gibberish, which is what a judge that does not
follow the reply format looks like. What a server received is read from its own access log.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.serving import save_tiny
from videollm.serve import launch

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
CHAT_LINE = '"POST /v1/chat/completions HTTP/1.1"'


@dataclass(frozen=True)
class Server:
    url: str  # OpenAI base URL: http://127.0.0.1:PORT/v1
    name: str  # the served model name
    log: Path

    def chat_requests(self) -> int:
        """Chat completions the server has answered so far (any status), from its access log."""
        return self.log.read_text(errors="replace").count(CHAT_LINE)


def tiny_checkpoint(path: Path) -> Path:
    """A tiny random SigLIP + Qwen2 video model (tests/serving.py), saved with its processor."""
    return save_tiny(path)


@contextlib.contextmanager
def tiny_servers(
    model: Path,
    logs: Path,
    count: int = 1,
    *,
    name: str = "tiny",
    media_root: Path | None = None,
    extra: Sequence[str] = (),
) -> Iterator[list[Server]]:
    """`count` servers of `model` (started together, so their start-up overlaps), ready; stopped on exit."""
    argv = ["--engine", "transformers", "--model", str(model), "--served-model-name", name, *extra]
    if media_root is not None:
        argv += ["--allowed-local-media-path", str(media_root)]
    started: list[tuple] = []
    try:
        for _ in range(count):
            port = launch.free_port()
            while port in {p for _, p, _ in started}:  # none of them listens yet
                port = launch.free_port()
            log = logs / f"server-{port}.log"
            started.append((launch.start_server(argv, port, log, env=OFFLINE), port, log))
        for proc, port, log in started:
            launch.wait_ready(proc, port, log, timeout=300)
        yield [Server(f"http://{launch.HOST}:{port}/v1", name, log) for _, port, log in started]
    finally:
        for proc, _, _ in started:
            launch.stop_server(proc)
