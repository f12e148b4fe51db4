"""`videollm demo`: the README's first command — serve the default model, ask about a sample video.

Decodes the bundled sample clip (videollm/assets/, a held-out clip of the synthetic world) with both
decoders through the sampler that training, serving and evaluation share; starts `videollm serve`
(the starter model, vLLM when installed) on 127.0.0.1; asks about the clip through the official
`openai` client, streamed, the video as a `file://` URL; prints each answer next to the one the
world expects; stops the server. No network, no weights to fetch. `--no-serve` only decodes.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from videollm.sample import Sample, load_sample
from videollm.serve.cli import ENGINES, default_engine

SHORT_ANSWER = "\nAnswer the question using a single word or phrase."  # the synthetic_qa task's prompt
DEFAULT_FRAMES = 8
START_TIMEOUT_S = 900.0
MAX_TOKENS = 32


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="videollm demo", description=__doc__.splitlines()[0])
    p.add_argument("--engine", choices=ENGINES, help="default: vllm when importable")
    p.add_argument("--model", help="checkpoint folder or hub id (default: the starter model)")
    p.add_argument("--port", type=int, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument(
        "--question",
        action="append",
        metavar="TEXT",
        help="ask this about the sample instead (repeatable); default: one static and one temporal question",
    )
    p.add_argument(
        "--frames",
        type=int,
        help=f"frames per video, here and on the server (default: {DEFAULT_FRAMES} here, the model's own on the server)",
    )
    p.add_argument("--no-serve", action="store_true", help="only decode the sample and show its questions")
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.port is not None and not 1 <= args.port <= 65535:
        parser.error(f"--port must be in 1..65535, got {args.port}")
    if args.frames is not None and args.frames < 1:
        parser.error(f"--frames must be ≥ 1, got {args.frames}")
    if args.question is not None and not all(q.strip() for q in args.question):
        parser.error("--question must not be empty")
    if args.no_serve and (args.engine or args.model or args.port or args.question):
        parser.error("--no-serve starts no server: drop --engine, --model, --port and --question")
    if args.model and args.model.startswith(("/", ".", "~")) and not Path(args.model).expanduser().is_dir():
        parser.error(f"--model {args.model}: no such folder (give a checkpoint folder or a hub id)")
    if args.port is not None:
        from videollm.serve.launch import port_is_free

        if not port_is_free(args.port):
            parser.error(f"--port {args.port} is in use on 127.0.0.1; pick another or leave --port out")
    return args


def serve_argv(args: argparse.Namespace, engine: str, media_root: Path) -> list[str]:
    """`videollm serve` options: the demo's choices plus file:// access to the sample's folder only."""
    argv = ["--engine", engine, "--allowed-local-media-path", str(media_root)]
    if args.model:
        argv += ["--model", args.model]
    if args.frames:
        argv += ["--frames", str(args.frames)]
    if engine == "vllm":
        argv += ["--enforce-eager"]  # no torch.compile: ~90 s less start-up, for two questions
    return argv


def questions(args: argparse.Namespace, sample: Sample) -> list[tuple[str, str, str | None]]:
    """(label, prompt, expected answer) for each question to ask."""
    if args.question:
        return [("yours", q.strip(), None) for q in args.question]
    return [(q["type"], q["question"] + SHORT_ANSWER, q["answer"]) for q in sample.first_of_each_type()]


def show_sample(sample: Sample, frames: int) -> bool:
    """Describe the clip and decode it with each backend; whether the backends agree."""
    from videollm.video import BACKENDS, FrameSampler, load_video

    info = sample.info
    print(
        f"sample video: {sample.video}  {info['num_frames']} frames of {info['size']}×{info['size']} px "
        f"at {info['fps']:g} fps ({info['duration']:g} s); synthetic world seed {info['seed']}, "
        f"{info['split']} split, never trained on"
    )
    print(f"  caption: {sample.caption}")
    sampler = FrameSampler.uniform(frames)
    digests = set()
    for backend in BACKENDS:
        v = load_video(sample.video, sampler, backend=backend)
        digest = hashlib.sha1(v.frames.tobytes()).hexdigest()[:12]
        digests.add(digest)
        print(
            f"  {backend:6s} {v.backend_version:8s} {v.num_frames} frames {v.indices.tolist()} "
            f"at {v.timestamps[0]:.2f}…{v.timestamps[-1]:.2f} s  pixels sha1 {digest}"
        )
    if len(digests) > 1:
        print("  the decoders disagree: the frames above differ", file=sys.stderr)
    return len(digests) == 1


def show_questions(sample: Sample) -> None:
    for q in sample.questions:
        print(f"  [{q['type']:8s}] {q['question']}  →  {q['answer']}")


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """SIGTERM runs our cleanup (stopping the server) instead of killing us on the spot."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        print("\nvideollm demo: terminated; stopping the server.", file=sys.stderr, flush=True)
        raise SystemExit(128 + signum)  # not an Exception: no client code catches it on the way out

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Progress:
    """One line while the server starts: updated in place on a terminal, every 15 s otherwise."""

    def __init__(self, every_s: float = 15.0):
        self.tty = sys.stdout.isatty()
        self.every_s = every_s
        self.shown = 0.0

    def __call__(self, elapsed: float) -> None:
        if self.tty:
            print(f"\r  waiting for /health … {elapsed:.0f} s", end="", flush=True)
        elif elapsed - self.shown >= self.every_s:
            self.shown = elapsed
            print(f"  waiting for /health … {elapsed:.0f} s", flush=True)

    def done(self) -> None:
        if self.tty:
            print("\r\033[K", end="")  # clear the progress line


def ask(client: Any, model: str, url: str, prompt: str) -> tuple[str, int]:
    """Stream one answer to stdout; (answer, completion tokens)."""
    stream = client.chat.completions.create(
        model=model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "video_url", "video_url": {"url": url}},
                    {"type": "text", "text": prompt},
                ],
            }
        ],
        max_tokens=MAX_TOKENS,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, tokens = "", 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
            print(chunk.choices[0].delta.content, end="", flush=True)
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
    return text, tokens


def converse(base_url: str, sample: Sample, asks: list[tuple[str, str, str | None]]) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=base_url + "/v1", api_key="EMPTY", max_retries=0, timeout=600)
    model = client.models.list().data[0].id
    url = sample.video.resolve().as_uri()
    print(f"asking {model} about {url} (streamed, openai client):")
    for label, prompt, expected in asks:
        print(f"  Q [{label}] {prompt.removesuffix(SHORT_ANSWER)}")
        print("  A: ", end="", flush=True)
        start = time.perf_counter()
        text, tokens = ask(client, model, url, prompt)
        print(f"{'' if text.strip() else '(empty)'}   [{tokens} tokens, {time.perf_counter() - start:.1f} s]")
        if expected is not None:
            print(f"  expected: {expected}")


def serve_and_ask(args: argparse.Namespace, sample: Sample) -> int:
    import openai

    from videollm.paths import cache_dir
    from videollm.serve.launch import ServerNotReady, free_port, log_tail, running_server

    engine = args.engine or default_engine()
    port = args.port or free_port()
    log = cache_dir("demo") / f"serve-{port}.log"
    model = args.model or "the starter model"
    hint = " (vLLM: 1–2 min on a CPU)" if engine == "vllm" else ""
    print(
        f"starting `videollm serve` ({engine}, {model}) on http://127.0.0.1:{port}{hint}; log: {log}",
        flush=True,
    )
    progress = Progress()
    # A small KV cache is plenty for two questions; a user's setting wins.
    env = {"VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    start = time.monotonic()
    try:
        with running_server(
            serve_argv(args, engine, sample.video.parent.resolve()),
            log,
            port=port,
            env=env,
            timeout=START_TIMEOUT_S,
            progress=progress,
        ) as base_url:
            progress.done()
            print(
                f"ready in {time.monotonic() - start:.0f} s: {base_url}/v1 (OpenAI API), {base_url}/ (web chat)",
                flush=True,
            )
            try:
                converse(base_url, sample, questions(args, sample))
            except openai.OpenAIError as e:
                print(f"\nvideollm demo: the server did not answer: {e}", file=sys.stderr)
                print(f"--- {log} (last lines) ---\n{log_tail(log)}", file=sys.stderr)
                return 1
            print("stopping the server …", flush=True)
    except ServerNotReady as e:
        progress.done()
        print(f"\nvideollm demo: the server did not start: {e}", file=sys.stderr)
        return 1
    print("server stopped.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        sample = load_sample()
    except FileNotFoundError as e:
        print(f"videollm demo: {e}", file=sys.stderr)
        return 1
    agree = show_sample(sample, args.frames or DEFAULT_FRAMES)
    if args.no_serve:
        show_questions(sample)
        return 0 if agree else 1
    try:
        with sigterm_as_exit():
            code = serve_and_ask(args, sample)
    except KeyboardInterrupt:
        print("\nvideollm demo: interrupted; the server was stopped.", file=sys.stderr)
        return 130
    return code if agree else 1
