"""videollm's routes and request guard, shared by both engines' apps.

- `GET /`: the web chat page (static/index.html).
- `GET /v1/videollm/info`: engine, model, default frames and limits (what the page shows).
- `POST /v1/videollm/frames`: the frames the server's sampler picks for a video, as JPEG
  thumbnails with their timestamps (so the page shows exactly what the model will see).
- `Guard`: a pure ASGI middleware that answers a wrong API key with an OpenAI-shaped 401, caps the
  request body, and (on vLLM) runs `checks.check_chat` on chat requests and moves per-request
  frame settings to where vLLM's loader reads them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import secrets
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from videollm.inference.media import MediaPolicy
from videollm.serve.checks import check_chat, check_url, for_vllm, policy_sampler_check
from videollm.serve.errors import APIError, error_body
from videollm.video.types import VideoError

GUARDED = ("/v1",)
CHAT_PATH = "/v1/chat/completions"
THUMB_SIDE = 96


@dataclass
class ServeInfo:
    """What the routes need to know about the running server."""

    engine: str
    model: str
    policy: MediaPolicy
    api_key: str | None = None

    def describe(self) -> dict[str, Any]:
        p = self.policy
        return {
            "engine": self.engine,
            "model": self.model,
            "frames": {"num_frames": p.num_frames, "fps": p.fps},
            "decoder": p.backend,
            "max_videos": p.max_videos,
            "limits": {
                "max_bytes": p.limits.max_bytes,
                "max_duration_s": p.limits.max_duration_s,
                "max_pixels": p.limits.max_pixels,
                "max_frames": p.limits.max_frames,
            },
            "allowed_media_domains": list(p.allowed_domains),
            "local_media": p.allowed_local_root is not None,
        }


def page() -> str:
    return resources.files("videollm.serve").joinpath("static/index.html").read_text(encoding="utf-8")


def error_response(e: APIError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status)


def thumbnails(frames: Any, side: int = THUMB_SIDE) -> list[str]:
    """JPEG data URLs of frames, shrunk to `side` pixels on the long edge."""
    from PIL import Image

    out = []
    for frame in frames:
        img = Image.fromarray(frame)
        img.thumbnail((side, side))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=80)
        out.append("data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode())
    return out


def build_router(info: ServeInfo) -> APIRouter:
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page())

    @router.get("/v1/videollm/info")
    async def server_info() -> dict[str, Any]:
        return info.describe()

    @router.post("/v1/videollm/frames")
    async def frames(request: Request) -> JSONResponse:
        """Body: {"video": URL, plus optional num_frames / fps / max_frames / start / end}."""
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return error_response(APIError(400, "the request body is not valid JSON"))
        try:
            if not isinstance(body, dict) or not isinstance(body.get("video"), str):
                raise APIError(400, 'send {"video": "data:video/mp4;base64,..."}', "video")
            check_url(body["video"], info.policy, "video")
            settings = {k: v for k, v in body.items() if k != "video"}
            policy_sampler_check(info.policy, settings)
            video = await asyncio.to_thread(info.policy.load, body["video"], settings)
        except APIError as e:
            return error_response(e)
        except VideoError as e:
            return error_response(APIError(e.status, str(e), "video"))
        return JSONResponse(
            {
                "num_frames": video.num_frames,
                "indices": [int(i) for i in video.indices],
                "timestamps": [round(float(t), 3) for t in video.timestamps],
                "fps": video.fps,
                "duration": video.duration,
                "thumbnails": await asyncio.to_thread(thumbnails, video.frames),
            }
        )

    return router


def _key_ok(scope: Scope, api_key: str) -> bool:
    headers = dict(scope.get("headers") or [])
    value = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, token = value.partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(
        hashlib.sha256(token.encode()).digest(), hashlib.sha256(api_key.encode()).digest()
    )


class Guard:
    """API key, body size cap and (with `rewrite_chat`, on vLLM) the chat checks, before any handler runs."""

    def __init__(self, app: ASGIApp, info: ServeInfo, rewrite_chat: bool = False):
        self.app = app
        self.info = info
        self.rewrite_chat = rewrite_chat
        # base64 inflates by 4/3; leave room for the text of the request.
        self.max_body = info.policy.limits.max_bytes * 4 // 3 * info.policy.max_videos + (1 << 20)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") == "OPTIONS":
            return await self.app(scope, receive, send)
        path = scope["path"].removeprefix(scope.get("root_path", ""))
        if self.info.api_key and path.startswith(GUARDED) and not _key_ok(scope, self.info.api_key):
            return await _send_error(
                send, APIError(401, "missing or wrong API key; send 'Authorization: Bearer KEY' (--api-key)")
            )
        if scope.get("method") != "POST" or not path.startswith(GUARDED):
            return await self.app(scope, receive, send)
        try:
            body = await _read_body(receive, self.max_body)
        except APIError as e:
            return await _send_error(send, e)
        if self.rewrite_chat and path == CHAT_PATH:
            try:
                parsed = json.loads(body)
            except (json.JSONDecodeError, UnicodeDecodeError):
                return await _send_error(send, APIError(400, "the request body is not valid JSON"))
            try:
                check = check_chat(parsed, self.info.policy)
            except APIError as e:
                return await _send_error(send, e)
            body = json.dumps(for_vllm(parsed, check.frames)).encode()
            scope = dict(scope)
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"content-length"] + [
                (b"content-length", str(len(body)).encode())
            ]
        return await self.app(scope, _replay(body, receive), send)


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise APIError(
                413,
                f"the request body is over {limit} bytes, more than this server's media limit allows "
                "(--max-video-bytes); send a smaller video",
            )
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body once, then the client's own channel (so a disconnect still reaches the handler)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_error(send: Send, e: APIError) -> None:
    data = json.dumps(error_body(e.status, e.message, e.param)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": e.status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})
