"""Checks on a chat request that both engines run before any media is touched.

What is checked here is what must be refused *before* a fetch or a decode: where media may come
from (`file://` only under the allowed root and never with `..`; `http(s)` only from allowed hosts,
so no request is ever made to any other: no SSRF), how many videos a prompt may carry, and which
per-request frame settings are allowed. vLLM's own checks would let an http URL through to any
host when no domain list is given, and answer a `file://` URL with a 500 when no root is set;
these run first on both engines.

Per-request frame settings are accepted where vLLM users put them: `mm_processor_kwargs`
(`{"num_frames": 16}`) or `media_io_kwargs.video`; `frame_settings` merges them, and
`for_vllm` moves them to `media_io_kwargs.video`, where vLLM hands them to the video loader.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videollm.inference.media import FRAME_KEYS, MediaPolicy
from videollm.serve.errors import APIError

MEDIA_PARTS = {"video_url": "video", "image_url": "image"}
TEXT_PARTS = ("text", "input_text")


@dataclass
class ChatCheck:
    """What the checks found: media URLs in order, the frame settings, and the body to forward."""

    videos: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    frames: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)


def check_chat(body: Any, policy: MediaPolicy) -> ChatCheck:
    """Validate a /v1/chat/completions body's messages and media; raise `APIError` naming the field."""
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object with 'model' and 'messages'")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise APIError(400, "'messages' must be a non-empty list of {role, content} objects", "messages")
    out = ChatCheck(body=body)
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise APIError(400, f"{where} must be an object with a string 'role'", where)
        content = message.get("content")
        if content is None or isinstance(content, str):
            continue
        if not isinstance(content, list):
            raise APIError(
                400, f"{where}.content must be a string or a list of content parts", f"{where}.content"
            )
        for j, part in enumerate(content):
            _check_part(part, f"{where}.content[{j}]", policy, out)
    if len(out.videos) > policy.max_videos:
        raise APIError(
            400,
            f"the prompt has {len(out.videos)} videos; this server takes at most {policy.max_videos} per prompt "
            "(--max-videos)",
            "messages",
        )
    out.frames = frame_settings(body)
    policy_sampler_check(policy, out.frames)
    return out


def _check_part(part: Any, where: str, policy: MediaPolicy, out: ChatCheck) -> None:
    if not isinstance(part, dict) or not isinstance(part.get("type"), str):
        raise APIError(400, f"{where} must be an object with a 'type'", where)
    kind = part["type"]
    if kind in TEXT_PARTS:
        if not isinstance(part.get("text"), str):
            raise APIError(400, f"{where}.text must be a string", f"{where}.text")
        return
    if kind not in MEDIA_PARTS:
        raise APIError(
            400,
            f"{where}: content part type {kind!r} is not supported; use text, image_url or video_url",
            where,
        )
    value = part.get(kind)
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str) or not url:
        raise APIError(
            400, f"{where}.{kind}.url must be a non-empty string (data:, file:// or http(s) URL)", where
        )
    check_url(url, policy, f"{where}.{kind}.url")
    (out.videos if MEDIA_PARTS[kind] == "video" else out.images).append(url)


def check_url(url: str, policy: MediaPolicy, where: str = "url") -> None:
    """Refuse media URLs this server may not read, without touching the network or the file."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "data":
        return
    if scheme == "file":
        root = policy.allowed_local_root
        if root is None:
            raise APIError(
                400,
                f"{where}: file:// URLs are disabled on this server; send the video as a data: URL, or start the "
                "server with --allowed-local-media-path DIR",
                where,
            )
        path = urllib.parse.unquote(urllib.parse.urlparse(url).path)
        if ".." in Path(path).parts:
            raise APIError(
                400, f"{where}: '..' is not allowed in file:// URLs; give the path under {root}", where
            )
        resolved = Path(path).resolve()
        if not resolved.is_relative_to(root):
            raise APIError(400, f"{where}: {path} is outside the allowed media root {root}", where)
        return
    if scheme in ("http", "https"):
        host = (urllib.parse.urlparse(url).hostname or "").lower()
        if not any(host == d or host.endswith("." + d) for d in policy.allowed_domains):
            allowed = ", ".join(policy.allowed_domains) or "none"
            raise APIError(
                400,
                f"{where}: host {host!r} is not an allowed media domain (allowed: {allowed}); send the video as a "
                "data: URL or start the server with --allowed-media-domains HOST",
                where,
            )
        return
    raise APIError(
        400, f"{where}: unsupported URL scheme {scheme or url[:16]!r}; use data:, file:// or http(s)", where
    )


def frame_settings(body: Mapping[str, Any]) -> dict[str, Any]:
    """Per-request frame settings from `mm_processor_kwargs` and `media_io_kwargs.video` (FRAME_KEYS only)."""
    out: dict[str, Any] = {}
    mm = body.get("mm_processor_kwargs")
    io = body.get("media_io_kwargs")
    if mm is not None and not isinstance(mm, dict):
        raise APIError(
            400, 'mm_processor_kwargs must be an object, e.g. {"num_frames": 16}', "mm_processor_kwargs"
        )
    if io is not None and not (isinstance(io, dict) and all(isinstance(v, dict) for v in io.values())):
        raise APIError(400, 'media_io_kwargs must be {"video": {...}}', "media_io_kwargs")
    video_io = (io or {}).get("video") or {}
    for name, src in (("mm_processor_kwargs", mm or {}), ("media_io_kwargs.video", video_io)):
        unknown = sorted(set(src) - set(FRAME_KEYS))
        if unknown:
            raise APIError(
                400,
                f"{name}: unsupported key(s) {unknown}; per-request settings are {', '.join(FRAME_KEYS)}",
                name,
            )
        out.update(src)
    if set(io or {}) - {"video"}:
        raise APIError(400, "media_io_kwargs takes only a 'video' section", "media_io_kwargs")
    return out


def policy_sampler_check(policy: MediaPolicy, frames: Mapping[str, Any]) -> None:
    """Validate frame settings now (400/413 before any decode), as the loader will build them."""
    from videollm.video.types import VideoError

    try:
        policy.sampler(frames)
    except VideoError as e:
        raise APIError(e.status if e.status in (400, 413) else 400, str(e), "mm_processor_kwargs") from e


def for_vllm(body: dict[str, Any], frames: Mapping[str, Any]) -> dict[str, Any]:
    """The body vLLM should see: frame settings moved to `media_io_kwargs.video` (where its loader gets them)."""
    body = dict(body)
    body.pop("mm_processor_kwargs", None)
    body.pop("media_io_kwargs", None)
    if frames:
        body["media_io_kwargs"] = {"video": dict(frames)}
    return body
