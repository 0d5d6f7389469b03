"""MLflow tracking of real `kedro run`s, read back through MlflowClient.

Each project gets its own absolute ``sqlite:////<tmp>/mlflow.db`` through
MLFLOW_TRACKING_URI: MLflow caches a store per URI string for the life of the
process, so the relative default would keep writing to the first project's
database.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.pipeline import Pipeline
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from chest_xray.evaluation.metrics import flat_metrics
from chest_xray.modeling.inputs import decode_grey_png
from chest_xray.tools.demo_data import DemoDatasetFacts
from chest_xray.tracking import helpers_tmp as tracking
from chest_xray.tracking.helpers_tmp import (
    TerminatedBySignalError,
    TrackingServerUnreachableError,
    check_tracking_server,
    evaluation_metrics,
    git_tags,
    history_metrics,
    process_is_gone,
    raise_on_sigterm,
    run_name,
)
from chest_xray.tracking.hooks import MlflowHooks
from chest_xray.tracking.run_comparison import main as compare_runs
from tests.conftest import REPO, nest

EXPERIMENT = "chest-xray"
EPOCH_METRICS = ["loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc"]
PLOTS = ["training_curves", "confusion_matrix", "roc_curve", "prediction_gallery"]
MANIFEST = Path("data/03_primary/split_manifest.csv")

slow = pytest.mark.slow


# --------------------------------------------------------------------------- helpers


def new_project(root: Path, data_from: Path | None = None) -> Path:
    """A throw-away copy of the project's conf (as ``kedro_project``), optionally with data."""
    project = root / "project"
    shutil.copytree(REPO / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    (project / "src").mkdir()
    shutil.copy(REPO / "pyproject.toml", project / "pyproject.toml")
    if data_from is not None:
        shutil.copytree(data_from / "data", project / "data")
    bootstrap_project(project)
    return project


def sqlite_uri(project: Path) -> str:
    return f"sqlite:///{project / 'mlflow.db'}"


def kedro_run(project: Path, env: str = "demo", params: dict | None = None, **run_args: Any):
    """``kedro run`` in-process (the cwd must be ``project``)."""
    with KedroSession.create(
        project_path=project, env=env, runtime_params=nest(params or {})
    ) as session:
        return session.run(**run_args)


def experiment_runs(client: MlflowClient) -> list[Run]:
    """Every run of the experiment, newest first."""
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    return list(
        client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
    )


def newest_run(client: MlflowClient) -> Run:
    return experiment_runs(client)[0]


def artifact_paths(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def read_artifact(client: MlflowClient, run_id: str, path: str, tmp: Path) -> bytes:
    return Path(client.download_artifacts(run_id, path, str(tmp))).read_bytes()


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sha16(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


# ------------------------------------------------------------ one tracked project


@dataclass
class Tracked:
    project: Path
    uri: str
    client: MlflowClient
    data_processing: Run
    trainings: dict[int, Run]  # by epochs


@pytest.fixture(scope="module")
def tracked(
    tmp_path_factory: pytest.TempPathFactory, demo_dataset: DemoDatasetFacts
) -> Iterator[Tracked]:
    """data_processing once, then training twice (2 and 3 epochs), all tracked."""
    with pytest.MonkeyPatch.context() as patch:
        project = new_project(tmp_path_factory.mktemp("tracked"))
        patch.chdir(project)
        uri = sqlite_uri(project)
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        client = MlflowClient(uri)
        data = {"raw_root": str(demo_dataset.root), "preprocessing.workers": 1}
        kedro_run(project, params=data, pipeline_names=["data_processing"])
        processing = newest_run(client)
        trainings = {}
        for epochs in (2, 3):
            kedro_run(
                project,
                params={"training.epochs": epochs},
                pipeline_names=["training", "evaluation"],
            )
            trainings[epochs] = newest_run(client)
        yield Tracked(project, uri, client, processing, trainings)


@slow
def test_each_run_is_named_finished_and_tagged(tracked: Tracked) -> None:
    fingerprint = sha16(tracked.project / MANIFEST)
    for pipeline, run in [
        ("data_processing", tracked.data_processing),
        *(("training", run) for run in tracked.trainings.values()),
    ]:
        info, tags = run.info, run.data.tags
        assert info.status == "FINISHED"
        assert info.run_name == f"{pipeline}-{info.run_id[:8]}"
        assert tags["pipeline"] == pipeline
        assert tags["kedro_env"] == "demo"
        assert tags["data_fingerprint"] == fingerprint  # same data, same fingerprint
        assert tags["host"] == socket.gethostname()
        assert tags["pid"] == str(os.getpid())
        # The temporary copy is not a git repository.
        assert tags["git_commit"] == tags["git_dirty"] == "unknown"
    for run in tracked.trainings.values():
        assert run.data.tags["keras_backend"] == keras.backend.backend()
        assert run.data.tags["device"] in {"CPU", "GPU", "TPU"}
    assert "device" not in tracked.data_processing.data.tags  # no model, no device
    assert mlflow.active_run() is None  # no run left open in-process


@slow
def test_typed_parameters_are_logged_field_by_field(tracked: Tracked) -> None:
    for epochs, run in tracked.trainings.items():
        params = run.data.params
        assert params["training.epochs"] == str(epochs)
        assert params["training.model.dropout"] == "0.5"
        assert params["training.model.dense_units"] == "64"  # conf/demo
        assert params["training.model.conv_filters"] == "[32, 64, 128, 128]"
        assert params["training.optimizer.learning_rate"] == "0.001"
        assert params["training.augmentation.rotation_degrees"] == "10.0"
        assert params["evaluation.threshold"] == "0.5"
        assert params["evaluation.gallery.n_images"] == "12"
    processing = tracked.data_processing.data.params
    assert processing["preprocessing.image_size"] == "[64, 64]"
    assert processing["split.seed"] == "2"
    assert processing["metadata.label_map.Pnemonia"] == "PNEUMONIA"


@slow
def test_every_epoch_is_a_metric_step(tracked: Tracked) -> None:
    for epochs, run in tracked.trainings.items():
        for key in EPOCH_METRICS:
            history = tracked.client.get_metric_history(run.info.run_id, key)
            assert [point.step for point in history] == list(range(1, epochs + 1)), key
    # The last run's curve is the training_history it saved.
    saved = json.loads((tracked.project / "data/08_reporting/training_history.json").read_text())
    last = tracked.trainings[3].info.run_id
    for key in EPOCH_METRICS:
        values = [p.value for p in tracked.client.get_metric_history(last, key)]
        assert values == pytest.approx(saved[key]), key


@slow
def test_test_metrics_are_the_evaluation_report(tracked: Tracked) -> None:
    report = json.loads((tracked.project / "data/08_reporting/test_metrics.json").read_text())
    expected = evaluation_metrics(flat_metrics(report))
    logged = tracked.trainings[3].data.metrics
    for key in ["accuracy", "sensitivity", "specificity", "precision", "f1", "auc", "threshold"]:
        assert logged[f"test_{key}"] == pytest.approx(expected[f"test_{key}"]), key
    assert {key: logged[key] for key in expected} == pytest.approx(expected)
    # The final model on validation does not land on Keras' per-epoch val_* curves.
    assert "validation_accuracy" in logged
    history = tracked.client.get_metric_history(tracked.trainings[3].info.run_id, "val_accuracy")
    assert len(history) == 3


@slow
def test_plots_reports_and_the_manifest_are_artifacts(tracked: Tracked, tmp_path: Path) -> None:
    client, run_id = tracked.client, tracked.trainings[3].info.run_id
    assert artifact_paths(client, run_id) == {
        *(f"plots/{name}.png" for name in PLOTS),
        "metrics/test_metrics.json",
        "metrics/training_history.json",
        "data/split_manifest.csv",
    }
    reports = tracked.project / "data/08_reporting"
    for name in ["test_metrics", "training_history"]:
        logged = read_artifact(client, run_id, f"metrics/{name}.json", tmp_path)
        assert json.loads(logged) == json.loads((reports / f"{name}.json").read_text())
    manifest = read_artifact(client, run_id, "data/split_manifest.csv", tmp_path)
    assert manifest == (tracked.project / MANIFEST).read_bytes()
    png = read_artifact(client, run_id, "plots/roc_curve.png", tmp_path)
    assert png.startswith(b"\x89PNG") and len(png) > 5_000

    processing = tracked.data_processing.info.run_id
    assert {"plots/dataset_summary.png", "data/split_manifest.csv"} <= artifact_paths(
        client, processing
    )


@slow
def test_the_logged_model_reloads_and_predicts_like_the_run(tracked: Tracked) -> None:
    run_id = tracked.trainings[3].info.run_id
    mlflow.set_tracking_uri(tracked.uri)
    predictions = pd.read_csv(tracked.project / "data/07_model_output/test_predictions.csv")
    rows = predictions.head(8)
    images = np.stack(
        [
            decode_grey_png((tracked.project / f"data/03_primary/images/{key}.png").read_bytes())
            for key in rows["image_id"]
        ]
    )[..., None].astype("float32")

    model = mlflow.keras.load_model(f"runs:/{run_id}/model")
    assert getattr(model, "optimizer", None) is None  # logged without Adam's state
    probability = model.predict(images, verbose=0).reshape(-1)
    assert probability == pytest.approx(rows["probability"].to_numpy(), abs=1e-5)

    pyfunc = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    assert pyfunc.metadata.signature.inputs.inputs[0].shape == (-1, 64, 64, 1)
    assert np.asarray(pyfunc.predict(images)).reshape(-1) == pytest.approx(
        rows["probability"].to_numpy(), abs=1e-5
    )


@slow
def test_comparison_shows_the_differing_parameter_and_both_accuracies(
    tracked: Tracked, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "runs.csv"
    assert (
        compare_runs(
            ["--tracking-uri", tracked.uri, "--sort", "test_accuracy", "--csv", str(table)]
        )
        == 0
    )
    printed = capsys.readouterr().out
    runs = tracked.trainings.values()
    assert "training.epochs" in printed
    for run in runs:
        assert run.info.run_name in printed
        assert f"{run.data.metrics['test_accuracy']:.4f}" in printed
    assert tracked.data_processing.info.run_name not in printed  # no test metrics

    written = pd.read_csv(table)
    assert sorted(written["training.epochs"]) == [2, 3]
    assert written["test_accuracy"].is_monotonic_decreasing
    assert set(written["run_id"]) == {run.info.run_id for run in runs}
    # Only what differs: equal fields and kedro-mlflow's whole-group strings are left out.
    assert "training.seed" not in written.columns
    assert "training" not in written.columns


# ------------------------------------------------------------ runs that do not finish


@slow
def test_a_failed_run_is_failed_with_its_error(
    kedro_project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_uri(kedro_project))
    missing = tmp_path / "no-such-download"
    with pytest.raises(Exception) as raised:
        kedro_run(
            kedro_project, params={"raw_root": str(missing)}, pipeline_names=["data_processing"]
        )
    client = MlflowClient(sqlite_uri(kedro_project))
    run = newest_run(client)
    assert run.info.status == "FAILED"
    assert run.data.tags["error"].startswith(type(raised.value).__name__)
    assert str(missing) in run.data.tags["error"]
    traceback = read_artifact(client, run.info.run_id, "error/traceback.txt", tmp_path)
    assert b"Traceback" in traceback
    assert mlflow.active_run() is None


@slow
def test_sigterm_fails_the_run_and_a_killed_run_is_closed_at_next_start(
    tracked: Tracked, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = new_project(tmp_path, data_from=tracked.project)
    monkeypatch.chdir(project)
    uri = sqlite_uri(project)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = MlflowClient(uri)
    env = {**os.environ, "COLUMNS": "200", "TF_CPP_MIN_LOG_LEVEL": "2"}

    # 1. SIGTERM during training: a real `kedro run`, stopped after its first epoch.
    log = tmp_path / "kedro.log"
    checkpoints = project / "data/06_models/checkpoints"
    kedro = Path(sys.executable).with_name("kedro")
    command = [str(kedro), "run", "--env=demo", "--pipelines=training"]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*command, "--params=training.epochs=50"], cwd=project, env=env, stdout=out, stderr=out
        )
        try:
            deadline = time.monotonic() + 180
            while not (checkpoints.exists() and any(checkpoints.iterdir())):
                assert proc.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) != 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    run = newest_run(client)
    assert run.info.status == "FAILED", log.read_text()[-3000:]
    assert run.data.tags["error"].startswith("TerminatedBySignalError: Received SIGTERM")
    assert run.data.tags["pid"] == str(proc.pid)
    assert "error/traceback.txt" in artifact_paths(client, run.info.run_id)

    # 2. SIGKILL leaves no chance to close a run: it stays RUNNING...
    script = (
        "import os, signal, mlflow\n"
        "from chest_xray.tracking.helpers_tmp import process_tags\n"
        f"mlflow.set_experiment({EXPERIMENT!r})\n"
        "run = mlflow.start_run(tags=process_tags())\n"
        "print(run.info.run_id, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    killed_id = killed.stdout.strip().splitlines()[-1]
    assert client.get_run(killed_id).info.status == "RUNNING"
    experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    elsewhere = client.create_run(experiment_id, tags={"host": "another-host", "pid": "1"})

    # ...until the next tracked run on this host marks it KILLED (a cheap one: a plot).
    kedro_run(project, pipeline_names=["training"], node_names=["plot_training_curves"])
    closed = client.get_run(killed_id)
    assert closed.info.status == "KILLED"
    assert "ended without closing the run" in closed.data.tags["end_reason"]
    assert client.get_run(elsewhere.info.run_id).info.status == "RUNNING"  # not ours to judge
    assert newest_run(client).info.status == "FINISHED"


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
    started = time.monotonic()
    with pytest.raises(TrackingServerUnreachableError, match=re.escape(uri)):
        kedro_run(
            kedro_project,
            params={"raw_root": str(demo_dataset.root)},
            pipeline_names=["data_processing"],
        )
    assert time.monotonic() - started < 30
    assert not (kedro_project / "data").exists()


# -------------------------------------------------------------------- the helpers


def test_run_name_is_the_pipeline_and_a_short_id() -> None:
    assert run_name(["training"], "1a2b3c4d5e6f") == "training-1a2b3c4d"
    assert run_name(None, "1a2b3c4d5e6f") == "default-1a2b3c4d"
    assert (
        run_name(["data_processing", "training"], "ff" * 16) == "data_processing+training-ffffffff"
    )


def test_git_tags_inside_and_outside_a_repository(tmp_path: Path) -> None:
    assert git_tags(tmp_path) == {"git_commit": "unknown", "git_dirty": "unknown"}

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(tmp_path), *args], check=True, capture_output=True, text=True
        ).stdout.strip()

    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", "code.py")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "first")
    head = git("rev-parse", "HEAD")
    assert git_tags(tmp_path) == {
        "git_commit": head,
        "git_dirty": "false",
        "mlflow.source.git.commit": head,
    }
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_tags(tmp_path)["git_dirty"] == "true"


def test_history_becomes_metrics_with_the_epoch_as_step() -> None:
    metrics = history_metrics({"loss": [0.9, 0.5], "val_auc": [0.6, 0.7], "epoch": [1, 2]})
    assert sorted((m.key, m.step, m.value) for m in metrics) == [
        ("loss", 1, 0.9),
        ("loss", 2, 0.5),
        ("val_auc", 1, 0.6),
        ("val_auc", 2, 0.7),
    ]
    assert history_metrics({"loss": [], "epoch": []}) == []


def test_final_validation_metrics_are_renamed_off_the_epoch_curves() -> None:
    assert evaluation_metrics({"test_accuracy": 0.9, "val_accuracy": 0.8, "val_auc": 0.7}) == {
        "test_accuracy": 0.9,
        "validation_accuracy": 0.8,
        "validation_auc": 0.7,
    }


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


def test_sigterm_becomes_an_exception_until_restored() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    restore = raise_on_sigterm()
    try:
        assert signal.getsignal(signal.SIGTERM) is tracking._raise_terminated
        with pytest.raises(TerminatedBySignalError, match="SIGTERM"):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs at the next bytecode
    finally:
        restore()
    assert signal.getsignal(signal.SIGTERM) == previous


def test_a_process_is_gone_when_dead_or_younger_than_the_run() -> None:
    now_ms = int(time.time() * 1000)
    assert not process_is_gone(os.getpid(), now_ms)
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert process_is_gone(int(child.stdout), now_ms)
    if Path("/proc/self/stat").exists():  # pid reuse: this process is younger than the run
        assert process_is_gone(os.getpid(), run_started_ms=0)


def test_an_interrupted_run_is_closed_as_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KeyboardInterrupt skips Kedro's pipeline hooks, and MLflow's atexit would end the
    run FINISHED: the hooks' own atexit (and the next session) end it KILLED."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    previous = signal.getsignal(signal.SIGTERM)
    hooks = MlflowHooks()
    experiment_id = MlflowClient(uri).create_experiment(EXPERIMENT)
    run = mlflow.start_run(experiment_id=experiment_id, run_name="training")  # as kedro-mlflow
    run_params = {"pipeline_names": ["training"], "env": "demo", "project_path": str(tmp_path)}
    hooks.before_pipeline_run(run_params=run_params, pipeline=Pipeline([]))
    assert signal.getsignal(signal.SIGTERM) is tracking._raise_terminated
    # ... interrupted: neither after_pipeline_run nor on_pipeline_error is called.
    hooks._close_interrupted_run()
    assert mlflow.active_run() is None
    assert signal.getsignal(signal.SIGTERM) == previous
    closed = MlflowClient(uri).get_run(run.info.run_id)
    assert closed.info.status == "KILLED"
    assert closed.info.run_name == f"training-{run.info.run_id[:8]}"
    assert closed.data.tags["end_reason"] == "interrupted before the pipeline ended"
