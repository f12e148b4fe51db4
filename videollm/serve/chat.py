"""`videollm chat VIDEO`: talk about a video in the terminal, through an endpoint or a local model.

With `--endpoint URL` it is an OpenAI client of any server (`videollm serve`, vLLM, ...), the
video sent as a data: URL; with `--model PATH` (or neither: the default model) the model runs in
this process on the transformers engine. `-q QUESTION` asks once and exits; otherwise each line
typed is a follow-up (the video stays in the first turn, as in the web page), until EOF or `/exit`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import mimetypes
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from videollm.inference import default_model


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="videollm chat", description="Chat about a video in the terminal.")
    p.add_argument("video", help="a video file (or an http(s)/data: URL with --endpoint)")
    p.add_argument("-q", "--question", help="ask this once, print the answer and exit")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--endpoint", help="an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    where.add_argument("--model", help="run this checkpoint here (transformers engine)")
    p.add_argument("--api-key", default="EMPTY", help="the endpoint's API key")
    p.add_argument(
        "--frames", type=int, default=None, help="frames to sample (default: the server's/model's)"
    )
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.0)
    return p


def video_url(video: str) -> str:
    """A local file as a data: URL; URLs unchanged."""
    if video.split(":", 1)[0] in ("http", "https", "data", "file"):
        return video
    path = Path(video)
    if not path.is_file():
        raise SystemExit(f"videollm chat: {video} is not a file")
    mime = mimetypes.guess_type(path.name)[0] or "video/mp4"
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()


def first_turn(url: str, question: str) -> dict[str, Any]:
    return {
        "role": "user",
        "content": [{"type": "video_url", "video_url": {"url": url}}, {"type": "text", "text": question}],
    }


Answer = Callable[[list[dict[str, Any]]], Iterator[str]]


def endpoint_answerer(args: argparse.Namespace) -> Answer:
    from openai import OpenAI

    client = OpenAI(base_url=args.endpoint, api_key=args.api_key)
    model = client.models.list().data[0].id
    extra = {"mm_processor_kwargs": {"num_frames": args.frames}} if args.frames else None

    def answer(messages: list[dict[str, Any]]) -> Iterator[str]:
        stream = client.chat.completions.create(
            model=model,
            messages=messages,
            max_tokens=args.max_tokens,
            temperature=args.temperature,
            stream=True,
            extra_body=extra,
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content

    return answer


def local_answerer(args: argparse.Namespace) -> Answer:
    import torch

    from videollm.inference.batching import BatchedGenerator, SamplingParams
    from videollm.inference.media import MediaPolicy
    from videollm.model import VideoLLMForConditionalGeneration, VideoLLMProcessor
    from videollm.serve.cli import model_frames

    path = args.model or default_model()
    model = VideoLLMForConditionalGeneration.from_pretrained(path, dtype=torch.float32)
    processor = VideoLLMProcessor.from_pretrained(path)
    generator = BatchedGenerator(model, processor, batch_size=1)
    policy = MediaPolicy(num_frames=args.frames or model_frames(path))
    video = policy.load(Path(args.video))
    params = SamplingParams(max_tokens=args.max_tokens, temperature=args.temperature)

    def answer(messages: list[dict[str, Any]]) -> Iterator[str]:
        prepared = generator.prepare(messages, [video], [])
        loop = asyncio.new_event_loop()
        stream = generator.stream(prepared, params)
        try:
            while True:
                try:
                    event = loop.run_until_complete(anext(stream))
                except StopAsyncIteration:
                    return
                if event.kind == "error":
                    raise event.error
                if event.text:
                    yield event.text
        finally:
            loop.run_until_complete(stream.aclose())
            loop.close()

    return answer


def converse(
    answer: Answer,
    url: str,
    question: str | None,
    *,
    read: Callable[[], str] = input,
    out: TextIO | None = None,
) -> list[dict[str, Any]]:
    """One-shot with `question`, else read follow-ups until EOF / '/exit'. Returns the conversation."""
    out = out or sys.stdout
    messages: list[dict[str, Any]] = []
    while True:
        if question is None:
            try:
                line = read().strip()
            except EOFError:
                break
            if not line:
                continue
            if line in ("/exit", "/quit"):
                break
        else:
            line = question
        messages.append(first_turn(url, line) if not messages else {"role": "user", "content": line})
        reply = ""
        for piece in answer(messages):
            reply += piece
            out.write(piece)
            out.flush()
        out.write("\n")
        messages.append({"role": "assistant", "content": reply})
        if question is not None:
            break
    return messages


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.endpoint:
        answer = endpoint_answerer(args)
        url = video_url(args.video)
    else:
        answer = local_answerer(args)
        url = "data:video/mp4;base64,"  # the local engine decodes args.video itself; the URL is never read
    interactive = args.question is None and sys.stdin.isatty()
    if interactive:
        print(f"Ask about {args.video} (Ctrl-D or /exit to quit).", file=sys.stderr)
    converse(answer, url, args.question)
    return 0


if __name__ == "__main__":
    sys.exit(main())
