"""Per-epoch metrics reach the MLflow run as the epoch ends, through a logging handler."""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
import pytest
from mlflow.entities import Metric

from chest_xray.modeling.callbacks import EpochLogger
from chest_xray.tracking.live_metrics import EpochMetricsHandler


@pytest.fixture
def run_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.set_experiment("live-metrics")  # not the last test's experiment id
    with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
        pass
    return run.info.run_id


def test_each_epoch_is_in_the_run_when_it_ends(run_id: str) -> None:
    handler = EpochMetricsHandler(run_id).attach()
    try:
        callback = EpochLogger(logging.getLogger("chest_xray.modeling.trainer"), 10, 2)
        callback.on_epoch_begin(0)
        callback.on_epoch_end(0, {"loss": 0.7, "val_auc": 0.8, "note": "not a number"})
        client = mlflow.MlflowClient()
        (first,) = client.get_metric_history(run_id, "val_auc")
        assert (first.step, first.value) == (1, pytest.approx(0.8))
        callback.on_epoch_end(1, {"loss": 0.5})
        assert [m.step for m in client.get_metric_history(run_id, "loss")] == [1, 2]
        assert client.get_metric_history(run_id, "note") == []
    finally:
        handler.detach()
    # What the full history would log again is filtered out; the rest is kept.
    later = [Metric("loss", 0.5, 0, 2), Metric("loss", 0.4, 0, 3)]
    assert [(m.key, m.step) for m in handler.unsent(later)] == [("loss", 3)]


def test_other_records_and_a_detached_handler_log_nothing(run_id: str) -> None:
    handler = EpochMetricsHandler(run_id).attach()
    logging.getLogger("chest_xray.anything").info("no metrics here")
    handler.detach()
    logging.getLogger("chest_xray.x").info("late", extra={"epoch": 1, "epoch_metrics": {"a": 1}})
    assert mlflow.MlflowClient().get_run(run_id).data.metrics == {}


def test_a_failing_store_costs_nothing_but_the_live_curve(run_id: str) -> None:
    handler = EpochMetricsHandler("no-such-run")
    record = logging.LogRecord("chest_xray", logging.INFO, "", 0, "x", None, None)
    record.epoch, record.epoch_metrics = 1, {"loss": 1.0}
    handler.emit(record)  # no exception
    assert handler.failed == 1 and handler.unsent([Metric("loss", 1.0, 0, 1)])
