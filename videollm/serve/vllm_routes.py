"""videollm's routes on vLLM's own OpenAI app: a `vllm.endpoint_plugins` entry point.

vLLM builds its app (every route and feature: logprobs, structured output, metrics, ...) and then
calls `attach_router` of each endpoint plugin named in `VLLM_PLUGINS`; `videollm serve` names this
one. It adds the web page, `/v1/videollm/*` and the `Guard` middleware (API key with an
OpenAI-shaped 401, body cap, media/frame checks). The server's policy and key come from the
environment `videollm serve` exported (vLLM owns the process).
"""

from __future__ import annotations

import os
from argparse import Namespace
from typing import Any

from fastapi import FastAPI

from videollm.inference.media import MediaPolicy
from videollm.serve.routes import Guard, ServeInfo, build_router

API_KEY_ENV = "VIDEOLLM_API_KEY"


class VideoLLMRoutes:
    """The endpoint plugin object vLLM instantiates (zero-argument factory)."""

    name = "videollm_routes"
    required_tasks = ("generate",)

    def __init__(self) -> None:
        self.info = ServeInfo(
            engine="vllm",
            model="",
            policy=MediaPolicy.from_env(),
            api_key=os.environ.get(API_KEY_ENV) or None,
        )

    def attach_router(self, app: FastAPI) -> None:
        app.include_router(build_router(self.info))
        app.add_middleware(Guard, info=self.info, rewrite_chat=True)

    async def init_state(self, engine_client: Any, state: Any, args: Namespace) -> None:
        names = getattr(args, "served_model_name", None) or [getattr(args, "model", "")]
        self.info.model = names[0] if isinstance(names, list) else str(names)
