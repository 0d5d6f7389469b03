"""A model server for a benchmark: a free port, the request body, started until /ping, stopped.

``bench_inference.py`` times ``mlflow models serve`` and ``bench_served_memory.py`` measures
``chest-xray serve``; both need the same steps around their measure, so they live here once:
a server that does not come up is an error with its log's tail (never a hang), and the
server's whole process group is stopped however the measure ends.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

READY_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 20.0


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def invocation_body(image: bytes) -> bytes:
    """The JSON of POST /invocations for one image: base64 bytes in the ``image`` column."""
    data = [[base64.b64encode(image).decode("ascii")]]
    return json.dumps({"dataframe_split": {"columns": ["image"], "data": data}}).encode()


def _answers_ping(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as answer:
            return int(answer.status) == 200
    except (OSError, urllib.error.HTTPError):
        return False


def _stop(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group (uvicorn's workers too), SIGKILL if it lingers."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=STOP_TIMEOUT_S)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


@contextmanager
def running_server(
    command: list[str],
    port: int,
    env: dict[str, str],
    log_path: Path,
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """``command`` started (its output in ``log_path``) until it answers /ping on ``port``.

    Yields the process and the seconds it took to answer. Raises ``RuntimeError`` with the
    log's tail if the server exits first or does not answer within ``ready_timeout_s``.
    """
    with log_path.open("wb") as log:
        start = time.perf_counter()
        server = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            while not _answers_ping(port):
                if server.poll() is not None:
                    tail = log_path.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"{command[0]} exited with {server.returncode}:\n{tail}")
                if time.perf_counter() - start > ready_timeout_s:
                    raise RuntimeError(
                        f"{command[0]} did not answer /ping within {ready_timeout_s:.0f} s"
                    )
                time.sleep(0.25)
            yield server, time.perf_counter() - start
        finally:
            _stop(server)
