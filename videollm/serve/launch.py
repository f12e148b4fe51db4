"""Run `videollm serve` as a child process, wait until it answers, stop it: the demo, the benchmarks
and the tests all start servers this one way.

The server gets its own session (process group): a Ctrl-C in the terminal reaches only the parent,
which then stops the whole group — vLLM's API server and the engine process it spawns — so nothing
is left running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

HOST = "127.0.0.1"


class ServerNotReady(RuntimeError):
    """The server exited or did not answer /health in time; the message ends with its log's tail."""


def free_port(host: str = HOST) -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_free(port: int, host: str = HOST) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def serve_command(argv: Sequence[str], port: int, host: str = HOST) -> list[str]:
    return [sys.executable, "-m", "videollm.cli", "serve", "--host", host, "--port", str(port), *argv]


def start_server(
    argv: Sequence[str], port: int, log: Path, env: Mapping[str, str] | None = None, host: str = HOST
) -> subprocess.Popen:
    """`videollm serve ARGV` on host:port in a new process group; stdout and stderr to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:  # the child holds its own copy of the descriptor
        return subprocess.Popen(
            serve_command(argv, port, host),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )


def log_tail(log: Path, chars: int = 4000) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return f"(no log at {log})"


def wait_ready(
    proc: subprocess.Popen,
    port: int,
    log: Path,
    timeout: float = 600.0,
    host: str = HOST,
    progress: Callable[[float], None] | None = None,
) -> float:
    """Poll GET /health until it answers 200; the seconds it took. `progress(elapsed)` is called
    about once a second. Raises ServerNotReady when it exits first or `timeout` passes."""
    import httpx

    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < timeout:
        if proc.poll() is not None:
            raise ServerNotReady(f"server exited with {proc.returncode}; log {log}:\n{log_tail(log)}")
        try:
            if httpx.get(f"http://{host}:{port}/health", timeout=2).status_code == 200:
                return elapsed
        except httpx.HTTPError:
            pass
        if progress:
            progress(elapsed)
        time.sleep(1.0)
    raise ServerNotReady(f"server not ready after {timeout:g} s; log {log}:\n{log_tail(log)}")


def stop_server(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM the server's process group (vLLM shuts its engine down on it) and wait for all of it;
    SIGKILL whatever is left after `timeout` s, or at once on a second Ctrl-C."""
    deadline = time.monotonic() + timeout
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(10)
    # The leader is gone; its children (vLLM's engine core) may still be exiting.
    killed = False
    while _group_alive(proc.pid):
        if not killed and time.monotonic() > deadline:
            _signal_group(proc.pid, signal.SIGKILL)
            killed, deadline = True, time.monotonic() + 10  # SIGKILL is delivered asynchronously: wait for it
        elif killed and time.monotonic() > deadline:
            break
        time.sleep(0.1)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is left in the group; zombies wait for a reaper we do
    not control, and signals cannot touch them anyway."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


@contextlib.contextmanager
def running_server(
    argv: Sequence[str],
    log: Path,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 600.0,
    host: str = HOST,
    progress: Callable[[float], None] | None = None,
) -> Iterator[str]:
    """`videollm serve ARGV`, ready: yields its base URL (`http://host:port`); stopped on exit,
    whether the block ends, raises or is interrupted."""
    port = port or free_port(host)
    proc = start_server(argv, port, log, env=env, host=host)
    try:
        wait_ready(proc, port, log, timeout=timeout, host=host, progress=progress)
        yield f"http://{host}:{port}"
    finally:
        stop_server(proc)
