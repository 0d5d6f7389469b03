"""`chest-xray-runs`: the latest runs side by side, on a real (temporary) MLflow store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from chest_xray.tracking.run_comparison import main
from tests.tracking.conftest import Tracked

T0 = 1_790_000_000_000  # ms; runs start a minute apart, in this order
RUNS = [
    # name, params, metrics, tags
    ("data_processing-aaaaaaaa", {"preprocessing.image_size": "[64, 64]"}, {}, {}),
    (
        "training-11111111",
        {"training": "epochs=2 ...", "training.epochs": "2", "training.seed": "42",
         "training.optimizer.learning_rate": "0.001"},
        {"test_accuracy": 0.80, "test_auc": 0.90, "loss": 0.5},
        {"git_commit": "abcdef1234567890", "git_dirty": "true", "data_fingerprint": "f00d"},
    ),
    (
        "training-22222222",
        {"training": "epochs=3 ...", "training.epochs": "3", "training.seed": "42",
         "training.optimizer.learning_rate": "0.001"},
        {"test_accuracy": 0.85, "test_auc": 0.88, "loss": 0.4},
        {"git_commit": "abcdef1234567890", "git_dirty": "false", "data_fingerprint": "f00d"},
    ),
    (
        "training-33333333",
        {"training": "epochs=4 ...", "training.epochs": "4", "training.seed": "42",
         "training.optimizer.learning_rate": "0.01"},
        {"test_accuracy": 0.70, "test_auc": 0.95, "loss": 0.6},
        {"git_commit": "unknown", "git_dirty": "unknown", "data_fingerprint": "f00d"},
    ),
]  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An experiment with one data-processing run and three evaluated training runs."""
    root = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("chest-xray", artifact_location=root.as_uri())
    for minute, (name, params, metrics, tags) in enumerate(RUNS):
        run_id = client.create_run(
            experiment, start_time=T0 + 60_000 * minute, tags=tags, run_name=name
        ).info.run_id
        for key, value in params.items():
            client.log_param(run_id, key, value)
        for key, value in metrics.items():
            client.log_metric(run_id, key, value)
        client.set_terminated(run_id, "FINISHED")
    return uri


def compare(store: str, tmp_path: Path, *args: str) -> pd.DataFrame:
    """Run the command with ``--csv`` and read the table back as text."""
    table = tmp_path / "runs.csv"
    assert main(["--tracking-uri", store, "--csv", str(table), *args]) == 0
    return pd.read_csv(table, dtype=str, keep_default_na=False)


def test_evaluated_runs_best_first_with_only_what_differs(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = compare(store, tmp_path)
    printed = capsys.readouterr().out
    assert list(table["run_name"]) == [
        "training-22222222",
        "training-11111111",
        "training-33333333",
    ]
    assert list(table["training.epochs"]) == ["3", "2", "4"]
    assert list(table.columns) == [
        "run_name", "run_id", "status", "start_time", "git_commit", "data_fingerprint",
        "training.epochs", "training.optimizer.learning_rate", "test_accuracy", "test_auc",
    ]  # fmt: skip
    assert list(table["git_commit"]) == ["abcdef12", "abcdef12+dirty", "unknown"]

    # Side by side: one column per run, a row per field.
    lines = printed.splitlines()
    header = lines[0]
    assert header.index("training-22222222") < header.index("training-33333333")
    epochs_row = next(line for line in lines if line.startswith("training.epochs"))
    assert epochs_row.split()[1:] == ["3", "2", "4"]
    accuracy_row = next(line for line in lines if line.startswith("test_accuracy"))
    assert accuracy_row.split()[1:] == ["0.8500", "0.8000", "0.7000"]


def test_last_n_sort_and_filters(store: str, tmp_path: Path) -> None:
    newest_two = compare(store, tmp_path, "-n", "2")
    assert set(newest_two["run_name"]) == {"training-33333333", "training-22222222"}

    by_auc = compare(store, tmp_path, "--sort", "test_auc", "--ascending")
    assert list(by_auc["test_auc"].astype(float)) == [0.88, 0.90, 0.95]

    fast = compare(
        store, tmp_path, "--filter", "params.`training.optimizer.learning_rate` = '0.01'"
    )
    assert list(fast["run_name"]) == ["training-33333333"]


def test_all_runs_and_all_params(store: str, tmp_path: Path) -> None:
    everything = compare(store, tmp_path, "--all")
    assert everything["run_name"].iloc[-1] == "data_processing-aaaaaaaa"  # no metric: last
    assert "preprocessing.image_size" in everything.columns

    all_params = compare(store, tmp_path, "--all-params")
    assert set(all_params["training.seed"]) == {"42"}
    assert "training" not in all_params.columns  # kedro-mlflow's whole-group string


def test_unknown_experiment_is_an_error(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--tracking-uri", store, "--experiment", "nope"]) == 1
    assert "No MLflow experiment named 'nope'" in capsys.readouterr().err


def test_module_entry_point_reads_the_tracking_uri_from_the_environment(store: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chest_xray.tracking.run_comparison", "-n", "1"],
        env={**os.environ, "MLFLOW_TRACKING_URI": store},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "training-33333333" in done.stdout
    assert "training-22222222" not in done.stdout


def test_an_empty_experiment_prints_no_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).create_experiment("chest-xray", artifact_location=tmp_path.as_uri())
    assert main(["--tracking-uri", uri, "--all"]) == 0
    assert capsys.readouterr().out.strip() == "No runs."


def test_the_tracking_uri_of_the_caller_is_left_as_it_was(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mlflow.search_runs reads MLflow's global URI: the command puts it (and the
    environment variable MLflow mirrors it in) back."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    mlflow.set_tracking_uri("sqlite:///elsewhere.db")
    assert main(["--tracking-uri", store, "-n", "1"]) == 0
    assert mlflow.get_tracking_uri() == "sqlite:///elsewhere.db"
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///elsewhere.db"


def test_a_closed_pipe_ends_quietly(store: str) -> None:
    """`chest-xray-runs | head -1`: no BrokenPipeError traceback."""
    command = [sys.executable, "-m", "chest_xray.tracking.run_comparison", "--all-params"]
    done = subprocess.run(
        f"{' '.join(command)} | head -c 10",
        shell=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": store, "COLUMNS": "40"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert len(done.stdout) == 10
    assert "BrokenPipeError" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_tracked_runs_show_the_differing_parameter_and_both_accuracies(
    tracked: Tracked, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "runs.csv"
    assert (
        main(["--tracking-uri", tracked.uri, "--sort", "test_accuracy", "--csv", str(table)]) == 0
    )
    printed = capsys.readouterr().out
    runs = tracked.trainings.values()
    assert "training.epochs" in printed
    for run in runs:
        assert run.info.run_name in printed
        assert f"{run.data.metrics['test_accuracy']:.4f}" in printed
    assert tracked.data_processing.info.run_name not in printed  # no test metrics

    written = pd.read_csv(table, dtype={"data_fingerprint": str})
    assert sorted(written["training.epochs"]) == [2, 3]
    assert written["test_accuracy"].is_monotonic_decreasing
    assert set(written["run_id"]) == {run.info.run_id for run in runs}
    assert set(written["data_fingerprint"]) == {
        tracked.data_processing.data.tags["data_fingerprint"]
    }
    # Only what differs: equal fields and kedro-mlflow's whole-group strings are left out.
    assert "training.seed" not in written.columns
    assert "training" not in written.columns

    only_demo = main(["--tracking-uri", tracked.uri, "--filter", "tags.env = 'demo'"])
    assert only_demo == 0 and tracked.trainings[2].info.run_name in capsys.readouterr().out


def test_metrics_with_intervals_read_value_low_high_and_the_csv_keeps_them_apart() -> None:
    from chest_xray.tracking.run_comparison import CI_NOTE, render

    table = pd.DataFrame(
        {
            "run_name": ["binary-1", "multiclass-2", "old-3"],
            "test_accuracy": [0.912, 0.70, 0.85],
            "test_accuracy_ci_low": [0.895, 0.66, float("nan")],
            "test_accuracy_ci_high": [0.929, 0.74, float("nan")],
            "test_macro_f1": [float("nan"), 0.65, float("nan")],
        }
    )
    lines = render(table).splitlines()
    accuracy = next(line for line in lines if line.startswith("test_accuracy"))
    assert "0.9120 [0.8950, 0.9290]" in accuracy
    assert "0.7000 [0.6600, 0.7400]" in accuracy
    assert accuracy.rstrip().endswith("0.8500")  # a run logged before intervals existed
    assert not any(line.startswith("test_accuracy_ci") for line in lines)
    assert lines[-1] == CI_NOTE
    macro = next(line for line in lines if line.startswith("test_macro_f1"))
    assert macro.split()[1:] == ["-", "0.6500", "-"]
