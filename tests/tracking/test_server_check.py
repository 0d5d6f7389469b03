"""The checks before a tracked run starts (``server_check``): an http(s) server that does
not answer and a SQLite store that cannot be used stop the run in seconds, naming them;
``--env=no_tracking`` runs past both. (Split from test_lifecycle.py; a URI with
credentials: test_uri_credentials.py.)"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from chest_xray.tools.demo_data import DemoDatasetFacts
from chest_xray.tracking.server_check import (
    TrackingServerUnreachableError,
    TrackingStoreError,
    check_sqlite_store,
    check_tracking_server,
)
from tests.tracking.conftest import Tracked
from tests.tracking.support import (
    closed_port,
    kedro_run,
    new_project,
    sqlite_uri,
)

slow = pytest.mark.slow


# -------------------------------------------------------- tracking off, server down


@slow
def test_no_tracking_environment_runs_and_logs_nothing(
    tracked: Tracked, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = new_project(tmp_path, data_from=tracked.project)
    monkeypatch.chdir(project)
    (project / "data/08_reporting/test_metrics.json").unlink()
    # Not even an unreachable team server in the environment blocks it.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{closed_port()}")
    kedro_run(project, env="no_tracking", pipeline_names=["evaluation"])
    assert (project / "data/08_reporting/test_metrics.json").exists()
    assert (project / "data/08_reporting/roc_curve.png").exists()  # saved, not logged
    client = MlflowClient(sqlite_uri(project))
    experiments = [e.experiment_id for e in client.search_experiments()]
    assert client.search_runs(experiments) == []
    assert not any(p.is_file() for p in (project / "mlruns").rglob("*"))
    assert mlflow.active_run() is None


@slow
def test_an_unreachable_server_stops_the_run_before_any_work(
    kedro_project: Path, monkeypatch: pytest.MonkeyPatch, demo_dataset: DemoDatasetFacts
) -> None:
    uri = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert_stops_at_start(
        kedro_project, demo_dataset, TrackingServerUnreachableError, re.escape(uri)
    )


def assert_stops_at_start(
    project: Path, dataset: DemoDatasetFacts, error: type[Exception], match: str
) -> None:
    """A data_processing run fails with ``error`` within seconds, before any node ran."""
    started = time.monotonic()
    with pytest.raises(error, match=match):
        kedro_run(
            project, params={"raw_root": str(dataset.root)}, pipeline_names=["data_processing"]
        )
    assert time.monotonic() - started < 30
    assert not (project / "data").exists()


# ------------------------------------------------------------------------ the store


@slow
def test_a_damaged_sqlite_store_stops_the_run_in_seconds_naming_it(
    kedro_project: Path, monkeypatch: pytest.MonkeyPatch, demo_dataset: DemoDatasetFacts
) -> None:
    """Before, a bare sqlite/SQLAlchemy error after hundreds of log lines."""
    store = kedro_project / "mlflow.db"
    store.write_bytes(b"this is no SQLite database" * 100)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_uri(kedro_project))
    assert_stops_at_start(
        kedro_project, demo_dataset, TrackingStoreError, rf"{re.escape(str(store))}.*no_tracking"
    )
    # The way out it names works, damaged store and all.
    kedro_run(
        kedro_project,
        env="no_tracking",
        params={"raw_root": str(demo_dataset.root), "preprocessing.workers": 1},
        pipeline_names=["data_processing"],
    )


def test_a_store_whose_folder_cannot_hold_it_is_refused_at_once(tmp_path: Path) -> None:
    """Before, MLflow retried for about two minutes."""
    (tmp_path / "a-file").write_text("not a folder")
    uri = f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}"
    started = time.monotonic()
    with pytest.raises(TrackingStoreError, match="not a writable folder"):
        check_sqlite_store(uri)
    assert time.monotonic() - started < 5
    check_sqlite_store(f"sqlite:///{tmp_path / 'mlflow.db'}")  # a new file: fine
    for other in ("http://127.0.0.1:1", "sqlite:///:memory:", None):
        check_sqlite_store(other)


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or not Path("/usr/bin/setpriv").exists(),
    reason="a file read-only to its user needs root to drop to another user (setpriv)",
)
def test_a_read_only_store_is_named() -> None:
    """Root may write anything, so the check runs as user nobody on root's 0644 file (in a
    folder nobody can enter: pytest's own temporary folders are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="chest-xray-ro-"))
    folder.chmod(0o755)
    store = folder / "mlflow.db"
    with contextlib.closing(sqlite3.connect(store)) as db:
        db.execute("CREATE TABLE runs (id TEXT)")
        db.commit()
    store.chmod(0o644)
    script = (
        "from chest_xray.tracking.server_check import check_sqlite_store\n"
        f"check_sqlite_store('sqlite:///{store}')\n"
    )
    result = subprocess.run(
        [
            "/usr/bin/setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-c",
            script,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    shutil.rmtree(folder)
    if "ModuleNotFoundError" in result.stderr or "Permission denied" in result.stderr[:300]:
        pytest.skip("user nobody cannot run this checkout's Python (a private folder above it)")
    assert result.returncode != 0
    assert "TrackingStoreError" in result.stderr
    assert str(store) in result.stderr.replace("\n", "")
    assert "--env=no_tracking" in result.stderr.replace("\n", "")


def test_a_store_this_user_may_not_write_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same as above wherever the tests run as root: os.access says no for the file."""
    store = tmp_path / "mlflow.db"
    with contextlib.closing(sqlite3.connect(store)) as db:
        db.execute("CREATE TABLE runs (id TEXT)")
        db.commit()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: Path(path) != store and real_access(path, mode)
    )
    with pytest.raises(TrackingStoreError, match=rf"{re.escape(str(store))} is read-only"):
        check_sqlite_store(f"sqlite:///{store}")


# ------------------------------------------------------------------- the server check


class _NotFound(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_health_check_fails_fast_only_when_nothing_answers() -> None:
    uri = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    with pytest.raises(TrackingServerUnreachableError, match=re.escape(uri)):
        check_tracking_server(uri, timeout=2)
    assert time.monotonic() - started < 5

    server = HTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:  # any HTTP answer (here 404) means a server is there
        check_tracking_server(f"http://127.0.0.1:{server.server_port}", timeout=2)
    finally:
        server.shutdown()
        server.server_close()
    for local in ["sqlite:///mlflow.db", "file:///tmp/mlruns", None]:
        check_tracking_server(local)
