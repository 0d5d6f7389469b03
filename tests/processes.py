"""Start, wait for and stop the real servers the integration tests run (127.0.0.1 only)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# Guards against a hang, not timed assertions: each step takes seconds to a minute.
START_TIMEOUT_S = 180
RUN_TIMEOUT_S = 600


def free_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(ready: Callable[[], bool], process: subprocess.Popen, what: str, log: Path) -> None:
    """Poll ``ready`` until it is true; fail with the tail of ``log`` if ``process`` dies."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"{what} exited ({process.returncode}):\n{tail(log)}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not ready after {START_TIMEOUT_S} s:\n{tail(log)}")
        time.sleep(0.25)


def stop(
    process: subprocess.Popen, first: signal.Signals = signal.SIGTERM, grace_s: float = 15
) -> None:
    """``first`` to the process group (servers fork workers), SIGKILL after ``grace_s``."""
    for sig in (first, signal.SIGKILL):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            continue


def tail(log: Path, chars: int = 4000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


def start_logged(
    command: list[str],
    log: Path,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    **popen: Any,
) -> subprocess.Popen:
    """Start ``command`` in a process group of its own (``stop`` signals the group), its
    output and errors to ``log``; ``popen``: further ``subprocess.Popen`` arguments."""
    with log.open("w") as out:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **popen,
        )


def run_logged(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
    """Run ``command`` to the end, output to ``log``; fail with its tail unless it succeeds."""
    with log.open("w") as out:
        done = subprocess.run(
            command,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
            timeout=RUN_TIMEOUT_S,
        )
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command[:4])} ... exited {done.returncode}:\n{tail(log)}")
