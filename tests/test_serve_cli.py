"""`videollm serve`'s command line: what it hands vLLM, and the errors it gives before starting anything."""

from __future__ import annotations

import json

import pytest

from videollm.inference.media import MediaPolicy
from videollm.serve import cli


def parse(*argv: str):
    args, extra = cli.build_parser().parse_known_args(list(argv))
    return args, extra


def test_vllm_command_turns_on_our_plugins_and_passes_unknown_options_through(tmp_path):
    args, extra = parse(
        "--model", str(tmp_path), "--frames", "12", "--api-key", "k", "--allowed-local-media-path", str(tmp_path),
        "--allowed-media-domains", "a.example,b.example", "--tensor-parallel-size", "2", "--max-model-len", "4096",
    )  # fmt: skip
    policy = cli.policy_from_args(args, str(tmp_path))
    argv, env = cli.vllm_command(args, extra, policy, str(tmp_path))
    assert argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert argv[-4:] == ["--tensor-parallel-size", "2", "--max-model-len", "4096"]
    assert json.loads(argv[argv.index("--media-io-kwargs") + 1]) == {"video": {"num_frames": 12}}
    assert "--trust-request-mm-kwargs" in argv
    assert argv[argv.index("--allowed-media-domains") + 1 : argv.index("--allowed-media-domains") + 3] == [
        "a.example",
        "b.example",
    ]
    assert (
        "--api-key" not in argv and env["VIDEOLLM_API_KEY"] == "k"
    )  # our guard checks it (OpenAI-shaped 401)
    assert env["VLLM_VIDEO_LOADER_BACKEND"] == "videollm"
    assert {"videollm", "videollm_routes"} <= set(env["VLLM_PLUGINS"].split(","))
    assert MediaPolicy.from_env(env) == policy


def test_user_settings_win_over_ours(tmp_path, monkeypatch):
    monkeypatch.setenv("VLLM_PLUGINS", "other")
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "0")
    args, extra = parse("--model", str(tmp_path), "--media-io-kwargs", '{"video": {"num_frames": 3}}')
    argv, env = cli.vllm_command(args, extra, cli.policy_from_args(args, str(tmp_path)), str(tmp_path))
    assert argv.count("--media-io-kwargs") == 1
    # no domains given: vLLM's own routes must not fetch from anywhere either
    assert argv[argv.index("--allowed-media-domains") + 1] == cli.NO_HTTP_MEDIA
    assert env["VLLM_PLUGINS"].split(",") == ["other", "videollm", "videollm_routes"]
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "0"


def test_frames_default_to_the_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"num_frames": 6}))
    args, _ = parse("--model", str(tmp_path))
    assert cli.policy_from_args(args, str(tmp_path)).num_frames == 6


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (
            ["--engine", "transformers", "--tensor-parallel-size", "2"],
            "unknown option(s) for --engine transformers",
        ),
        (["--frames", "500"], "over the frame limit 256"),
        (["--allowed-local-media-path", "/no/such/dir"], "is not a directory"),
    ],
)
def test_bad_options_fail_before_anything_starts(tmp_path, capsys, argv, words):
    with pytest.raises(SystemExit) as e:
        cli.main(["--model", str(tmp_path), *argv])
    assert e.value.code == 2
    assert words in capsys.readouterr().err


def test_default_model_honours_the_environment(monkeypatch, tmp_path):
    from videollm.inference import default_model

    monkeypatch.setenv("VIDEOLLM_MODEL", str(tmp_path))
    assert default_model() == str(tmp_path)
