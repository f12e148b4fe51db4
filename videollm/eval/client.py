"""An `Engine` over OpenAI-compatible endpoints: `videollm serve`, vLLM, or any compatible server.

Each request is one chat completion with a `video_url` content part (a `file://` URL of the
local file, or the file inlined as a `data:video/mp4;base64,` URL for servers on other machines)
and the text prompt. Frame settings travel the way vLLM accepts them:
`extra_body={"mm_processor_kwargs": {"num_frames": N}}` (or `{"fps": F, "max_frames": N}`),
plus `start`/`end` in seconds for segment benchmarks (MVBench), which `videollm serve` honours.

Several endpoints are used round-robin, so an evaluation spreads over replicas; the caller keeps
K requests in flight (`concurrent = True`: this engine is called from K threads). Connection
errors and 5xx/429 answers are retried with exponential backoff; a 4xx answer (a video the
server cannot read) raises `EndpointInputError` at once, so the item is reported, not retried.
"""

from __future__ import annotations

import base64
import itertools
import mimetypes
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from videollm.eval.judge import normalize_base_url
from videollm.inference.engine import GenerationRequest


class EndpointInputError(ValueError):
    """The server refused the request as bad input (4xx); the message is the server's."""


class EndpointEngine:
    concurrent = True
    batch_size = 1

    def __init__(
        self,
        endpoints: str | Sequence[str],
        served_model: str,
        *,
        api_key: str | None = None,
        video_transport: str = "file",
        timeout_s: float = 600.0,
        retries: int = 4,
        backoff_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        from openai import OpenAI

        if isinstance(endpoints, str):
            endpoints = [e for e in endpoints.split(",") if e.strip()]
        if not endpoints:
            raise ValueError("--endpoint needs at least one URL, e.g. http://127.0.0.1:8000/v1")
        if video_transport not in ("file", "data"):
            raise ValueError(f"video_transport must be 'file' or 'data', got {video_transport!r}")
        self.urls = [normalize_base_url(e.strip()) for e in endpoints]
        self.served_model = served_model
        self.video_transport = video_transport
        self.retries = max(1, retries)
        self.backoff_s = backoff_s
        self._sleep = sleep
        self.clients = [
            OpenAI(base_url=u, api_key=api_key or "EMPTY", timeout=timeout_s, max_retries=0)
            for u in self.urls
        ]
        self._next = itertools.cycle(range(len(self.clients)))
        self._lock = threading.Lock()
        self.requests_per_endpoint = [0] * len(self.clients)
        self.reported_models: set[str] = set()

    def describe(self) -> dict:
        info: dict[str, Any] = {
            "engine": "openai-endpoint",
            "endpoints": self.urls,
            "served_model": self.served_model,
            "reported_models": sorted(self.reported_models),
            "video_transport": self.video_transport,
        }
        try:  # what the server says it serves (vLLM adds root / max_model_len)
            models = self.clients[0].models.list()
            info["models"] = [m.model_dump() for m in models.data]
        except Exception as e:
            info["models_error"] = f"{type(e).__name__}: {e}"
        return info

    def _video_url(self, video: str | Path) -> str:
        path = Path(video).resolve()
        if self.video_transport == "file":
            return path.as_uri()
        mime = mimetypes.guess_type(path.name)[0] or "video/mp4"
        return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()

    def _body(self, r: GenerationRequest) -> tuple[list[dict], dict]:
        content: list[dict] = []
        mm: dict[str, Any] = {}
        if r.video is not None:
            content.append({"type": "video_url", "video_url": {"url": self._video_url(r.video)}})
            s = r.sampler
            if s is not None:
                if s.kind == "uniform":
                    mm["num_frames"] = s.num_frames
                else:
                    mm["fps"] = s.rate
                    if s.num_frames is not None:
                        mm["max_frames"] = s.num_frames
                if s.start is not None:
                    mm["start"] = s.start
                if s.end is not None:
                    mm["end"] = s.end
            if r.frames_fps:
                mm["frames_fps"] = r.frames_fps
        content.append({"type": "text", "text": r.prompt})
        extra = {"mm_processor_kwargs": mm} if mm else {}
        return [{"role": "user", "content": content}], extra

    def generate_one(self, r: GenerationRequest) -> str:
        import openai

        messages, extra = self._body(r)
        with self._lock:
            k = next(self._next)
            self.requests_per_endpoint[k] += 1
        client = self.clients[k]
        last: Exception | None = None
        for attempt in range(self.retries):
            try:
                kwargs: dict[str, Any] = {
                    "model": self.served_model,
                    "messages": messages,
                    "max_tokens": r.max_new_tokens,
                    "temperature": r.temperature,
                }
                if r.seed is not None:
                    kwargs["seed"] = r.seed
                if extra:
                    kwargs["extra_body"] = extra
                response = client.chat.completions.create(**kwargs)
                if response.model:
                    self.reported_models.add(response.model)
                return (response.choices[0].message.content or "").strip()
            except openai.APIStatusError as e:
                if 400 <= e.status_code < 500 and e.status_code not in (408, 429):
                    raise EndpointInputError(
                        f"{self.urls[k]} answered {e.status_code}: {_error_text(e)}"
                    ) from e
                last = e
            except (openai.APIConnectionError, openai.APITimeoutError) as e:
                last = e
            if attempt < self.retries - 1:
                self._sleep(self.backoff_s * (2**attempt))
            k = (k + 1) % len(self.clients)  # try the next replica
            client = self.clients[k]
        raise ConnectionError(f"no answer after {self.retries} tries ({type(last).__name__}: {last})")

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        return [self.generate_one(r) for r in requests]


def _error_text(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return str(err.get("message", err))
        return str(err)
    return str(e)
