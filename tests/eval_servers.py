"""Real OpenAI-compatible HTTP servers on 127.0.0.1 for the evaluation tests.

They are small FastAPI apps served by uvicorn in a background thread, reached over real sockets
by the real `openai` client our code uses. They stand in for what the tests cannot start here:

- `judge_app`: the *judge model* (GPT-3.5 in Video-ChatGPT's protocol; an open model behind vLLM
  in practice). It answers in the judge's reply format — a Python dict string — by comparing the
  "Correct Answer" and "Predicted Answer" lines of the prompt it receives; it can fail the first
  requests with 500s and answer garbage for chosen predictions, to exercise retries and failure
  counting.
- `video_model_app`: a *video model server* (`videollm serve`, issue #6, not in this repo yet, or
  vLLM). It reads the `video_url` it is sent (file:// or data:), decodes it with PyAV to prove it
  got a real video, and answers deterministically from the prompt, optionally slowly (so a test
  can kill a client mid-run). Unreadable videos get a 400 with an OpenAI-shaped error, as a real
  server answers.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import socket
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import unquote, urlparse

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def _completion(model: str, text: str) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


@dataclass
class JudgeBehaviour:
    model: str = "judge-test-1"
    fail_first: int = 0  # answer 500 to this many requests first
    garbage_for: tuple[str, ...] = ()  # predictions answered with an unparseable reply
    requests: list[dict] = field(default_factory=list)


def judge_app(behaviour: JudgeBehaviour) -> FastAPI:
    app = FastAPI()
    lock = threading.Lock()

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": behaviour.model, "object": "model", "owned_by": "test"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        with lock:
            behaviour.requests.append(body)
            n = len(behaviour.requests)
        if n <= behaviour.fail_first:
            return JSONResponse({"error": {"message": "overloaded", "type": "server_error"}}, status_code=500)
        user = body["messages"][-1]["content"]
        answer = re.search(r"Correct Answer: (.*)\n", user).group(1)
        pred = re.search(r"Predicted Answer: (.*)\n", user).group(1)
        if pred in behaviour.garbage_for:
            return _completion(behaviour.model, "I am not able to evaluate this pair.")
        same = answer.strip().lower() == pred.strip().lower()
        close = not same and bool(set(answer.lower().split()) & set(pred.lower().split()))
        reply = {True: "{'pred': 'yes', 'score': 5}", False: "{'pred': 'no', 'score': 1}"}[same]
        if close:
            reply = "{'pred': 'yes', 'score': 3}"
        return _completion(behaviour.model, reply)

    return app


@dataclass
class ModelBehaviour:
    model: str = "video-test-model"
    delay_s: float = 0.0
    requests: Counter = field(default_factory=Counter)  # prompt → times asked
    frames_seen: list[int] = field(default_factory=list)
    mm_kwargs: list[dict] = field(default_factory=list)


def _decode_frames(url: str) -> int:
    import av

    if url.startswith("file://"):
        src = unquote(urlparse(url).path)
    elif url.startswith("data:"):
        src = io.BytesIO(base64.b64decode(url.split(",", 1)[1]))
    else:
        raise ValueError(f"unsupported video url {url[:40]}")
    with av.open(src) as container:
        return sum(1 for _ in container.decode(video=0))


def answer_for(prompt: str) -> str:
    """The deterministic answer the stand-in model gives to a prompt."""
    h = int(hashlib.sha256(prompt.encode()).hexdigest(), 16)
    if "Option:" in prompt:
        return f"({'ABC'[h % 3]})"
    return ["red", "blue", "a circle moves left", "two"][h % 4]


def video_model_app(behaviour: ModelBehaviour) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": behaviour.model, "object": "model", "owned_by": "test"}]}

    @app.post("/v1/chat/completions")
    def chat(body: dict):
        content = body["messages"][-1]["content"]
        prompt = next(p["text"] for p in content if p["type"] == "text")
        behaviour.requests[prompt] += 1
        behaviour.mm_kwargs.append(body.get("mm_processor_kwargs", {}))
        for part in content:
            if part["type"] == "video_url":
                try:
                    behaviour.frames_seen.append(_decode_frames(part["video_url"]["url"]))
                except Exception as e:
                    return JSONResponse(
                        {
                            "error": {
                                "message": f"cannot decode video: {e}",
                                "type": "BadRequestError",
                                "code": 400,
                            }
                        },
                        status_code=400,
                    )
        if behaviour.delay_s:
            time.sleep(behaviour.delay_s)
        return _completion(behaviour.model, answer_for(prompt))

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(app: FastAPI):
    """Run `app` on 127.0.0.1 in a thread; yields its base URL (http://127.0.0.1:PORT/v1)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
