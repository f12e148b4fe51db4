"""The transformers engine's server: the OpenAI API subset vLLM serves, with the same error shapes.

`POST /v1/chat/completions` (text / image_url / video_url parts, `stream` with
`stream_options.include_usage`, `max_tokens`/`max_completion_tokens`, `temperature`, `top_p`,
`stop`, `seed`, `n=1`), `GET /v1/models`, `GET /health`, plus videollm's routes. Videos are
fetched and decoded with the server's `MediaPolicy`, and the processor runs, in worker threads;
generation is batched across concurrent requests by `BatchedGenerator`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from videollm.inference.batching import BatchedGenerator, Prepared, SamplingParams
from videollm.inference.media import MediaPolicy
from videollm.serve.checks import check_chat
from videollm.serve.errors import APIError
from videollm.serve.routes import Guard, ServeInfo, build_router, error_response
from videollm.video.types import VideoError

DEFAULT_MAX_TOKENS = 256


def sampling_params(body: dict[str, Any], prompt_tokens: int, context: int | None) -> SamplingParams:
    """Validate the OpenAI sampling fields; defaults follow vLLM's (temperature 1, top_p 1)."""

    def number(name: str, default: float, lo: float, hi: float) -> float:
        value = body.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise APIError(400, f"{name} must be a number in [{lo}, {hi}], got {value!r}", name)
        return float(value)

    n = body.get("n", 1)
    if n not in (1, None):
        raise APIError(400, f"n={n!r} is not supported; this server returns one choice (n=1)", "n")
    room = None if context is None else context - prompt_tokens
    if room is not None and room <= 0:
        raise APIError(
            400,
            f"the prompt is {prompt_tokens} tokens, which fills the model's context of {context}; "
            "send fewer frames (mm_processor_kwargs num_frames) or a shorter prompt",
            "messages",
        )
    name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = body.get(name)
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS if room is None else min(DEFAULT_MAX_TOKENS, room)
    elif isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise APIError(400, f"{name} must be an integer >= 1, got {max_tokens!r}", name)
    elif room is not None and max_tokens > room:
        raise APIError(
            400,
            f"This model's maximum context length is {context} tokens. However, you requested "
            f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} in the "
            f"completion). Please reduce the length of the messages or completion.",
            name,
        )
    stop = body.get("stop")
    if stop is None:
        stop = ()
    elif isinstance(stop, str):
        stop = (stop,)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        stop = tuple(s for s in stop if s)
    else:
        raise APIError(400, "stop must be a string or a list of strings", "stop")
    ignore_eos = body.get("ignore_eos", False)
    if not isinstance(ignore_eos, bool):
        raise APIError(400, f"ignore_eos must be true or false, got {ignore_eos!r}", "ignore_eos")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise APIError(400, f"seed must be an integer, got {seed!r}", "seed")
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=number("temperature", 1.0, 0.0, 2.0),
        top_p=number("top_p", 1.0, 1e-6, 1.0),
        seed=seed,
        stop=stop,
        ignore_eos=ignore_eos,
    )


def load_image(url: str, policy: MediaPolicy) -> Any:
    """An image_url part as a PIL image: data: URLs, file:// under the root, allowed http(s) hosts."""
    import base64
    import binascii
    import io
    import urllib.parse
    from pathlib import Path

    from PIL import Image, UnidentifiedImageError

    from videollm.video.sources import Deadline, fetch_url

    name = url[:48]
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        if ";base64" not in header:
            raise VideoError("image data URLs must be base64 (data:image/png;base64,...)", source=name)
        policy.limits.check_bytes(len(payload) * 3 // 4, name)
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as e:
            raise VideoError(f"bad base64 in the image data URL ({e})", source=name) from e
    elif url.startswith("file:"):
        path = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path))  # under the root: checked before
        if not path.is_file():
            raise VideoError("no such image file", source=str(path))
        policy.limits.check_bytes(path.stat().st_size, str(path))
        data = path.read_bytes()
    else:
        data = fetch_url(url, allowed_domains=policy.allowed_domains, limits=policy.limits,
                         deadline=Deadline(policy.timeout_s))  # fmt: skip
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError) as e:
        raise VideoError(f"not a readable image ({e})", source=name, status=415) from e
    if image.width * image.height > policy.limits.max_pixels:
        raise VideoError(
            f"{image.width}×{image.height} image is over the pixel limit", source=name, status=413
        )
    return image.convert("RGB")


def create_app(generator: BatchedGenerator, info: ServeInfo) -> FastAPI:
    app = FastAPI(title="videollm (transformers engine)")
    app.state.videollm = info
    app.include_router(build_router(info))
    app.add_middleware(Guard, info=info)
    created = int(time.time())

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(APIError(400, f"invalid request: {exc.errors()}"))

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = {
            "id": info.model,
            "object": "model",
            "created": created,
            "owned_by": "videollm",
            "root": info.model,
        }
        return {"object": "list", "data": [card]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return error_response(APIError(400, "the request body is not valid JSON"))
        try:
            prepared, params, stream = await _prepare(body, generator, info)
        except APIError as e:
            return error_response(e)
        rid = f"chatcmpl-{uuid.uuid4().hex}"
        if stream:
            opts = body.get("stream_options") or {}
            usage = bool(opts.get("include_usage")) if isinstance(opts, dict) else False
            return StreamingResponse(
                _sse(generator, prepared, params, rid, info.model, usage), media_type="text/event-stream"
            )
        return await _complete(
            request, generator, prepared, params, rid, info.model, bool(body.get("return_token_ids"))
        )

    return app


async def _prepare(
    body: Any, generator: BatchedGenerator, info: ServeInfo
) -> tuple[Prepared, SamplingParams, bool]:
    check = check_chat(body, info.policy)
    model = body.get("model")
    if model is not None and model != info.model:
        raise APIError(
            404, f"The model `{model}` does not exist. This server serves `{info.model}`.", "model"
        )
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise APIError(400, f"stream must be true or false, got {stream!r}", "stream")
    try:
        videos = await asyncio.gather(
            *(asyncio.to_thread(info.policy.load, u, check.frames) for u in check.videos)
        )
        images = await asyncio.gather(*(asyncio.to_thread(load_image, u, info.policy) for u in check.images))
    except VideoError as e:
        raise APIError(e.status, str(e), "messages") from e
    try:
        prepared = await asyncio.to_thread(generator.prepare, body["messages"], list(videos), list(images))
    except (ValueError, TypeError) as e:
        raise APIError(400, str(e), "messages") from e
    params = sampling_params(body, prepared.prompt_tokens, generator.context_length)
    return prepared, params, stream


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def _complete(
    request: Request,
    generator: BatchedGenerator,
    prepared: Prepared,
    params: SamplingParams,
    rid: str,
    model: str,
    token_ids: bool = False,
) -> JSONResponse:
    async def consume() -> tuple[str, Any]:
        text, done = "", None
        async for event in generator.stream(prepared, params):
            if event.kind == "error":
                raise event.error
            text += event.text
            if event.kind == "done":
                done = event
        return text, done

    task = asyncio.create_task(consume())
    while not task.done():  # a client that hangs up frees its row
        await asyncio.wait({task}, timeout=0.5)
        if not task.done() and await request.is_disconnected():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return error_response(APIError(400, "client disconnected"))
    try:
        text, done = task.result()
    except Exception as e:
        return error_response(APIError(500, f"generation failed: {e}"))
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "logprobs": None,
        "finish_reason": done.finish_reason,
    }
    response: dict[str, Any] = {
        "id": rid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": _usage(done.prompt_tokens, done.completion_tokens),
    }
    if token_ids:  # vLLM's `return_token_ids` extension, for exact comparisons between engines
        choice["token_ids"] = done.token_ids
        response["prompt_token_ids"] = prepared.inputs["input_ids"][0].tolist()
    return JSONResponse(response)


async def _sse(
    generator: BatchedGenerator,
    prepared: Prepared,
    params: SamplingParams,
    rid: str,
    model: str,
    include_usage: bool,
) -> AsyncIterator[str]:
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, usage: dict | None = None) -> str:
        choices = (
            []
            if usage is not None
            else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        )
        body: dict[str, Any] = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": choices,
        }
        if usage is not None:
            body["usage"] = usage
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    stream = generator.stream(prepared, params)
    try:
        async for event in stream:
            if event.kind == "error":
                yield f"data: {json.dumps(APIError(500, f'generation failed: {event.error}').body())}\n\n"
                break
            if event.text:
                yield chunk({"content": event.text})
            if event.kind == "done":
                yield chunk({}, event.finish_reason)
                if include_usage:
                    yield chunk({}, usage=_usage(event.prompt_tokens, event.completion_tokens))
        yield "data: [DONE]\n\n"
    finally:
        await stream.aclose()  # client gone mid-stream: cancels the row


def serve(args: Any, policy: MediaPolicy, model: str) -> int:
    """Load `model` with transformers and serve it until interrupted."""
    import torch
    import uvicorn

    from videollm.model import VideoLLMForConditionalGeneration, VideoLLMProcessor

    dtype = getattr(torch, args.dtype) if args.dtype and args.dtype != "auto" else torch.float32
    net = VideoLLMForConditionalGeneration.from_pretrained(model, dtype=dtype)
    processor = VideoLLMProcessor.from_pretrained(model)
    generator = BatchedGenerator(net, processor, batch_size=args.batch_size, wait_s=args.batch_wait_ms / 1000)
    info = ServeInfo(
        engine="transformers", model=args.served_model_name or model, policy=policy, api_key=args.api_key
    )
    app = create_app(generator, info)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    generator.close()
    return 0
