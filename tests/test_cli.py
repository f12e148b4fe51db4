"""`videollm` entry point: lists every job; an unfinished job says which issue brings it and exits 2."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from videollm import cli

JOBS = ["serve", "chat", "train", "export", "eval", "data", "bench"]


def _videollm(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "videollm"  # the console script of this environment
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300)


def test_help_lists_every_job():
    r = _videollm("--help")
    assert r.returncode == 0
    for job in JOBS:
        assert f"    {job} " in r.stdout or f"    {job}\n" in r.stdout, job


def test_unknown_command_is_an_error():
    r = _videollm("fly")
    assert r.returncode == 2
    assert "invalid choice" in r.stderr


@pytest.mark.parametrize("command", JOBS)
def test_every_job_has_its_own_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([command, "--help"])
    assert e.value.code == 0
    assert f"videollm {command}" in capsys.readouterr().out


def test_demo_runs_offline_and_shows_a_decoded_clip(tmp_path):
    exe = Path(sys.executable).parent / "videollm"
    env = {**os.environ, "VIDEOLLM_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    r = subprocess.run(
        [str(exe), "demo", "--frames", "6"], capture_output=True, text=True, timeout=600, env=env
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "sampled 6 frames" in r.stdout
    assert "frames identical: True" in r.stdout
    assert "[temporal]" in r.stdout and "[static  ]" in r.stdout
    assert (tmp_path / "demo" / "world-s0" / "world.json").is_file()
