"""`videollm` entry point: lists every job; an unfinished job says which issue brings it and exits 2."""

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
