"""`videollm demo` (the README's first command) and the bundled sample video it asks about.

Fast tier: the shipped sample is what its generator renders, the package data ships it, the
arguments, the offline path, a server that fails to start, and stopping a server's whole process
group. Slow tier: the demo end to end against a real server (vLLM, then the transformers engine),
and a Ctrl-C while vLLM starts leaves nothing of it running.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from videollm import demo, sample
from videollm.serve.launch import port_is_free, stop_server
from videollm.video import FrameSampler, load_video

REPO = Path(__file__).resolve().parents[1]
VIDEOLLM = Path(sys.executable).parent / "videollm"  # this environment's console script


# ----- the bundled sample -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered():
    return sample.make_sample()


def test_bundled_json_is_what_make_item_says(rendered):
    info, _ = rendered
    bundled = sample.load_sample()
    assert bundled.info == info
    assert bundled.video == sample.ASSETS / "sample.mp4"
    assert (info["seed"], info["split"], info["num_frames"], info["size"], info["fps"]) == (
        7,
        "test",
        16,
        64,
        8.0,
    )
    assert {q["type"] for q in info["questions"]} == {"static", "temporal"}
    for q in info["questions"]:
        assert q["answer"] in q["candidates"]


def test_bundled_video_decodes_to_the_rendered_frames_in_order(rendered):
    _, pixels = rendered
    video = load_video(sample.ASSETS / "sample.mp4", FrameSampler.uniform(16))
    assert video.frames.shape == pixels.shape == (16, 64, 64, 3)
    assert video.fps == pytest.approx(8.0) and video.num_source_frames == 16
    decoded, truth = video.frames.astype(np.float32), pixels.astype(np.float32)
    assert np.abs(decoded - truth).mean() < 3.0  # H.264 at CRF 16 on flat colours
    # each decoded frame is nearest to its own rendered frame: the motion (temporal answers) is intact
    dist = np.abs(decoded[:, None] - truth[None]).mean(axis=(2, 3, 4))
    assert dist.argmin(axis=1).tolist() == list(range(16))
    assert not np.array_equal(pixels[0], pixels[-1])  # the clip moves


def test_regenerating_writes_the_same_sample(tmp_path):
    assert sample.main(["--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "sample.json").read_text()) == sample.load_sample().info
    fresh = load_video(tmp_path / "sample.mp4", FrameSampler.uniform(16)).frames.astype(np.int16)
    shipped = load_video(sample.ASSETS / "sample.mp4", FrameSampler.uniform(16)).frames.astype(np.int16)
    assert np.abs(fresh - shipped).max() <= 8  # identical bytes with the same x264 build
    assert sample.main(["--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "sample.json").write_text("{}\n")
    assert sample.main(["--out", str(tmp_path), "--check"]) == 1


def test_package_data_ships_the_sample():
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "videollm"
    ]
    shipped = {
        p.relative_to(REPO / "videollm").as_posix() for pat in patterns for p in (REPO / "videollm").glob(pat)
    }
    assert {"assets/sample.mp4", "assets/sample.json"} <= shipped


def test_a_missing_sample_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"sample\.mp4.*python -m videollm\.sample"):
        sample.load_sample(tmp_path)


# ----- arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--port", "0"], "--port must be in 1..65535"),
        (["--port", "70000"], "--port must be in 1..65535"),
        (["--frames", "0"], "--frames must be ≥ 1"),
        (["--question", "  "], "--question must not be empty"),
        (["--no-serve", "--question", "why?"], "--no-serve starts no server"),
        (["--no-serve", "--engine", "vllm"], "--no-serve starts no server"),
        (["--model", "/no/such/checkpoint"], "--model /no/such/checkpoint: no such folder"),
        (["--engine", "tgi"], "invalid choice: 'tgi'"),
    ],
)
def test_bad_arguments_are_named(argv, words, capsys):
    with pytest.raises(SystemExit) as e:
        demo.parse_args(argv)
    assert e.value.code == 2
    assert words in capsys.readouterr().err


def test_a_port_in_use_is_refused(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(SystemExit):
            demo.parse_args(["--port", str(port)])
    assert f"--port {port} is in use" in capsys.readouterr().err


def test_serve_options():
    root = sample.ASSETS.resolve()
    argv = demo.serve_argv(demo.parse_args([]), "vllm", root)
    assert argv == ["--engine", "vllm", "--allowed-local-media-path", str(root), "--enforce-eager"]
    assert "--model" not in argv  # the starter: `videollm serve`'s own default
    args = demo.parse_args(["--model", "llava-hf/llava-onevision-qwen2-0.5b-ov-hf", "--frames", "4"])
    argv = demo.serve_argv(args, "transformers", root)
    assert argv[argv.index("--model") + 1] == "llava-hf/llava-onevision-qwen2-0.5b-ov-hf"
    assert argv[argv.index("--frames") + 1] == "4"
    assert "--enforce-eager" not in argv


def test_questions_default_to_one_static_and_one_temporal():
    s = sample.load_sample()
    asks = demo.questions(demo.parse_args([]), s)
    assert [label for label, _, _ in asks] == ["static", "temporal"]
    for label, prompt, expected in asks:
        q = next(q for q in s.questions if q["type"] == label)
        assert prompt == q["question"] + demo.SHORT_ANSWER and expected == q["answer"]
    asks = demo.questions(demo.parse_args(["--question", "What moves?", "--question", "Why?"]), s)
    assert asks == [("yours", "What moves?", None), ("yours", "Why?", None)]


# ----- running it -------------------------------------------------------------------------------


def test_no_serve_decodes_the_sample_with_both_decoders(capsys):
    assert demo.main(["--no-serve", "--frames", "6"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "pixels sha1" in line]
    assert [line.split()[0] for line in lines] == ["decord", "pyav"]
    assert len({line.split()[-1] for line in lines}) == 1  # the same pixels from both
    assert all("6 frames" in line for line in lines)
    for q in sample.load_sample().questions:
        assert f"{q['question']}  →  {q['answer']}" in out


def _env() -> dict[str, str]:
    """Offline, and unbuffered so that the tests read the demo's lines as they are printed."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def _run_demo(*argv: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["nice", "-n", "10", str(VIDEOLLM), "demo", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
    )


def _port(out: str) -> int:
    return int(re.search(r"on http://127\.0\.0\.1:(\d+)", out).group(1))


def _servers_on(port: int) -> list[int]:
    """Live processes whose command line names `--port PORT` (the server we started)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--port" in args and str(port).encode() in args:
            found.append(int(cmdline.parent.name))
    return found


def test_a_server_that_does_not_start_fails_the_demo_with_its_log(tmp_path):
    empty = tmp_path / "not-a-checkpoint"
    empty.mkdir()
    r = _run_demo("--engine", "transformers", "--model", str(empty), timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "the server did not start: server exited with" in r.stderr
    assert str(empty) in r.stderr  # the log's tail: what the server said about the model
    assert not _servers_on(_port(r.stdout))


def test_stop_server_ends_the_whole_group_even_a_child_that_ignores_sigterm():
    script = (
        "import signal, subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import signal, time; "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(120)'])\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    deadline = time.monotonic() + 60
    while len(_group(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(_group(proc.pid)) == 2
    stop_server(proc, timeout=3)
    assert _group(proc.pid) == []


def _group(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


# ----- end to end (slow) ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["vllm", "transformers"])
def test_demo_serves_the_starter_and_answers_about_the_sample(engine):
    argv = [] if engine == "vllm" else ["--engine", engine]  # vLLM: the README's `make demo` exactly
    r = _run_demo(*argv, timeout=1200)
    out = r.stdout
    assert r.returncode == 0, out + r.stderr[-4000:]
    assert f"starting `videollm serve` ({engine}, the starter model)" in out
    assert "ready in" in out and "server stopped." in out
    assert out.count("  Q [") == 2 and "Q [static]" in out and "Q [temporal]" in out
    answers = re.findall(r"^  A: (.*)\[(\d+) tokens, [\d.]+ s\]$", out, flags=re.M)
    assert len(answers) == 2 and all(int(n) >= 1 for _, n in answers), out
    expected = [q["answer"] for q in sample.load_sample().first_of_each_type()]
    assert re.findall(r"^  expected: (.*)$", out, flags=re.M) == expected
    port = _port(out)
    assert not _servers_on(port) and port_is_free(port)


@pytest.mark.slow
def test_ctrl_c_while_vllm_starts_stops_the_server_and_its_children():
    proc = subprocess.Popen(
        ["nice", "-n", "10", str(VIDEOLLM), "demo", "--engine", "vllm"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        port = None
        for line in proc.stdout:
            if "starting `videollm serve`" in line:
                port = _port(line)
                break
        assert port is not None
        # wait until vLLM has spawned a child (engine core, helpers): its group has two live members
        deadline = time.monotonic() + 600
        leader: list[int] = []
        while time.monotonic() < deadline:
            leader = _servers_on(port)
            if leader and len(_group(os.getpgid(leader[0]))) >= 2:
                break
            time.sleep(0.5)
        pgid = os.getpgid(leader[0])
        assert len(_group(pgid)) >= 2
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-4000:]
    assert "interrupted; the server was stopped" in err
    assert _group(pgid) == [] and not _servers_on(port)


@pytest.mark.slow
def test_sigterm_after_start_stops_the_server():
    proc = subprocess.Popen(
        [str(VIDEOLLM), "demo", "--engine", "transformers", "--question", "Describe the video in detail."],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        port = None
        for line in proc.stdout:
            port = port or (_port(line) if "starting `videollm serve`" in line else None)
            if line.startswith("ready in"):
                break
        assert port is not None and _servers_on(port)
        proc.terminate()
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err[-4000:]
    assert "terminated; stopping the server" in err
    assert not _servers_on(port)
