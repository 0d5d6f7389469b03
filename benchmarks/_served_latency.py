"""The served model's latency, for ``bench_inference.py``: over HTTP and in process.

One-image requests to ``mlflow models serve`` on a package (what a client sees: JSON,
base64, the pyfunc's checks, the network), and the same package's pyfunc ``predict``
called in this process (no HTTP), each after ``WARMUP_REQUESTS`` untimed calls.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import table
from _server import free_port, invocation_body, running_server

WARMUP_REQUESTS = 10


def _latencies(latencies_ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": float(np.percentile(latencies_ms, 50)),
        "p95_ms": float(np.percentile(latencies_ms, 95)),
        "mean_ms": float(statistics.fmean(latencies_ms)),
    }


def pyfunc_in_process(package: Path, files: list[Path], calls: int) -> dict[str, Any]:
    """The served model's own ``predict`` (signature check included), no HTTP: ms per call."""
    import base64

    import mlflow.pyfunc
    import pandas as pd

    pyfunc = mlflow.pyfunc.load_model(str(package))
    frames = [
        pd.DataFrame({"image": [base64.b64encode(f.read_bytes()).decode("ascii")]}) for f in files
    ]
    for index in range(WARMUP_REQUESTS):
        pyfunc.predict(frames[index % len(frames)])
    latencies = []
    for index in range(calls):
        frame = frames[index % len(frames)]
        start = time.perf_counter()
        pyfunc.predict(frame)
        latencies.append(1000 * (time.perf_counter() - start))
    return {"calls": calls, **_latencies(latencies)}


def _serve_command(package: Path, port: int) -> tuple[list[str], dict[str, str]]:
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "KEDRO_DISABLE_TELEMETRY": "1",
    }
    command = [str(Path(bin_dir, "mlflow")), "models", "serve", "-m", str(package)]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    return command, env


def serve_latency(
    package: Path, files: list[Path], requests_n: int, log_path: Path
) -> dict[str, Any]:
    """Start ``mlflow models serve`` on ``package``, time one-image requests, stop it."""
    import requests

    port = free_port()
    command, env = _serve_command(package, port)
    bodies = [invocation_body(f.read_bytes()) for f in files]
    session = requests.Session()

    def post(index: int) -> tuple[float, float]:
        start = time.perf_counter()
        response = session.post(
            f"http://127.0.0.1:{port}/invocations",
            data=bodies[index % len(bodies)],
            headers={"Content-Type": "application/json"},
        )
        elapsed = time.perf_counter() - start
        if response.status_code != 200:
            raise RuntimeError(f"request {index}: {response.status_code} {response.text}")
        return elapsed, float(response.json()["predictions"][0]["probability"])

    with running_server(command, port, env, log_path) as (_, ready_s):
        print(f"server ready on port {port} after {ready_s:.1f} s")
        for index in range(WARMUP_REQUESTS):
            post(index)
        latencies: list[float] = []
        prob: dict[int, float] = {}
        for index in range(requests_n):
            elapsed, p = post(index)
            latencies.append(1000 * elapsed)
            prob.setdefault(index % len(bodies), p)
    return {
        "requests": requests_n,
        "warmup_requests": WARMUP_REQUESTS,
        "ready_s": ready_s,
        **_latencies(latencies),
        "min_ms": min(latencies),
        "max_ms": max(latencies),
        "latencies_ms": latencies,
        "probabilities_by_file": prob,
    }


def served(
    package: Path, files: list[Path], requests: int, project_prob: np.ndarray
) -> dict[str, Any]:
    """``mlflow models serve``'s one-image latency, and the same pyfunc's in-process."""
    print(f"serving the package, {requests} one-image requests...")
    figures = serve_latency(package, files, requests, package.parent / "serve.log")
    served_prob = figures.pop("probabilities_by_file")
    figures["max_abs_diff_vs_project"] = float(
        max(abs(p - project_prob[i]) for i, p in served_prob.items())
    )
    figures["in_process_pyfunc"] = pyfunc_in_process(package, files, requests)
    return figures


def report_served(served: dict[str, Any]) -> None:
    """The two latency rows, and how far the served probabilities are from the project's."""
    pyfunc = served["in_process_pyfunc"]
    print()
    print(
        table(
            [
                (
                    f"HTTP, mlflow models serve ({served['requests']} requests)",
                    served["p50_ms"],
                    served["p95_ms"],
                    served["mean_ms"],
                ),
                (
                    "the same model's pyfunc predict in-process (no HTTP)",
                    pyfunc["p50_ms"],
                    pyfunc["p95_ms"],
                    pyfunc["mean_ms"],
                ),
            ],
            ["one-image request", "p50 ms", "p95 ms", "mean ms"],
        )
    )
    print(
        f"server ready after {served['ready_s']:.1f} s; max |P(served) - P(project)| = "
        f"{served['max_abs_diff_vs_project']:.2g}"
    )
