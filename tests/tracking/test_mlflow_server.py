"""Team setup: a real `mlflow server` (sqlite + proxied artifact store) receives a kedro run.

MLFLOW_TRACKING_URI overrides conf/base/mlflow.yml; params, metrics, artifacts and
the model arrive over HTTP and are read back over HTTP.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from chest_xray.inference.packaging import load_classifier
from chest_xray.tools.demo_data import DemoDatasetFacts
from tests.processes import start_logged, stop
from tests.tracking.conftest import TRAINING
from tests.tracking.support import (
    artifact_paths,
    closed_port,
    experiment_runs,
    kedro_run,
    new_project,
    sqlite_uri,
)

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 120  # 9-15 s on 2 idle cores; generous for a loaded machine


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path
    artifacts: Path

    def wait_healthy(self) -> None:
        """Poll /health until it answers 200; fail with the server's log if it dies."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"mlflow server exited:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not healthy:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.25)


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[Server]:
    """A tracking server on a free 127.0.0.1 port, started (not yet healthy), always stopped."""
    root = tmp_path / "server"
    root.mkdir()
    port = closed_port()
    log = root / "server.log"
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    command = [
        *(sys.executable, "-m", "mlflow", "server"),
        *("--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"),
        *("--artifacts-destination", str(root / "artifacts")),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
    ]
    process = start_logged(command, log, env=env)
    try:
        yield Server(f"http://127.0.0.1:{port}", process, log, root / "artifacts")
    finally:
        stop(process)


def test_a_kedro_run_is_tracked_on_the_server(
    mlflow_server: Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    demo_dataset: DemoDatasetFacts,
) -> None:
    project = new_project(tmp_path)
    monkeypatch.chdir(project)
    # Prepare the data, tracked locally, while the server boots.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_uri(project))
    data = {"raw_root": str(demo_dataset.root), "preprocessing.workers": 1}
    kedro_run(project, params=data, pipeline_names=["data_processing"])
    mlflow_server.wait_healthy()

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)  # wins over mlflow.yml
    kedro_run(project, params={"training.epochs": 1}, pipeline_names=TRAINING)

    client = MlflowClient(mlflow_server.url)
    (run,) = experiment_runs(client)
    run_id = run.info.run_id
    assert run.info.status == "FINISHED"
    assert run.info.run_name == f"training+evaluation-{run_id[:8]}"
    assert run.data.params["training.epochs"] == "1"
    assert run.data.params["training.model.dense_units"] == "64"
    assert 0.0 <= run.data.metrics["test_accuracy"] <= 1.0
    assert [m.step for m in client.get_metric_history(run_id, "val_loss")] == [1]
    assert {
        "plots/training_curves.png",
        "metrics/test_metrics.json",
        "data/split_manifest.csv",
    } <= artifact_paths(client, run_id)
    (lineage,) = client.get_run(run_id).inputs.dataset_inputs
    assert lineage.dataset.digest == run.data.tags["data_fingerprint"]
    # Artifacts went through the server into its artifact store, not into ./mlruns.
    stored = {path.name for path in mlflow_server.artifacts.rglob("*") if path.is_file()}
    assert {"training_curves.png", "test_metrics.json", "model.keras", "MLmodel"} <= stored
    assert not (project / "mlruns").exists() or not any(
        (project / "mlruns").rglob("training_curves.png")
    )
    mlflow.set_tracking_uri(mlflow_server.url)
    try:
        classifier = load_classifier(f"runs:/{run_id}/model")
    finally:  # leave no global URI pointing at a server about to stop
        mlflow.set_tracking_uri(sqlite_uri(project))
    assert classifier.model.input_shape == (None, 64, 64, 1)

    # The local store kept only the data-processing run.
    local = [r.info.run_name for r in experiment_runs(MlflowClient(sqlite_uri(project)))]
    assert len(local) == 1 and local[0].startswith("data_processing-")


def test_a_uri_with_credentials_reaches_the_server_and_stores_no_password(
    mlflow_server: Server,
    kedro_project: Path,
    monkeypatch: pytest.MonkeyPatch,
    demo_dataset: DemoDatasetFacts,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue #24, item 12, against MLflow itself: ``user:password@`` in the URI (this server
    asks for no auth, so what is checked is that it is reached, artifacts included, and
    that the password is in nothing the run stored or the session logged)."""
    password = "pw-that-must-not-show"
    mlflow_server.wait_healthy()
    with_credentials = mlflow_server.url.replace("http://", f"http://alice:{password}@")
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(name, "")  # recorded, so the run's own setting is undone after
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", with_credentials)
    data = {"raw_root": str(demo_dataset.root), "preprocessing.workers": 1}
    try:
        kedro_run(kedro_project, params=data, pipeline_names=["data_processing"])
    finally:  # leave no global URI pointing at a server about to stop
        mlflow.set_tracking_uri(sqlite_uri(kedro_project))
    client = MlflowClient(mlflow_server.url)
    (run,) = experiment_runs(client)
    assert run.info.status == "FINISHED"
    assert "data/split_manifest.csv" in artifact_paths(client, run.info.run_id)
    stored = [*run.data.tags.values(), *run.data.params.values(), run.info.artifact_uri]
    assert not [value for value in stored if password in str(value)]
    assert "alice:***@" in caplog.text and password not in caplog.text
