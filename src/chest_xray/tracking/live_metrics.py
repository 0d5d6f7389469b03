"""Training curves in the MLflow run while training runs, not only when the node returns.

The trainer knows nothing of MLflow: its per-epoch log record carries the
epoch's metrics (``modeling.trainer.EpochLogger``). ``EpochMetricsHandler`` is a
logging handler that the tracking hooks attach to the ``chest_xray`` logger for
the life of a tracked run; it sends each such record to the run with
``step`` = epoch, and remembers what it sent, so the full history logged when
``training_history`` is saved adds only what it has not seen (e.g. epochs of a
resumed training that ran before a restart).
"""

from __future__ import annotations

import logging
import time

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

PACKAGE_LOGGER = "chest_xray"


class EpochMetricsHandler(logging.Handler):
    """Logs ``record.epoch_metrics`` to ``run_id`` at step ``record.epoch``; ignores the rest."""

    def __init__(self, run_id: str) -> None:
        super().__init__(level=logging.INFO)
        self.run_id = run_id
        self.sent: set[tuple[str, int]] = set()
        self.failed = 0

    def emit(self, record: logging.LogRecord) -> None:
        metrics = getattr(record, "epoch_metrics", None)
        epoch = getattr(record, "epoch", None)
        if not isinstance(metrics, dict) or not isinstance(epoch, int):
            return
        now = int(time.time() * 1000)
        batch = [Metric(key, float(value), now, epoch) for key, value in metrics.items()]
        try:
            MlflowClient().log_batch(self.run_id, metrics=batch, synchronous=True)
        except Exception:  # a live curve is a convenience: the full history follows at the end
            self.failed += 1
            return
        self.sent.update((metric.key, epoch) for metric in batch)

    def unsent(self, metrics: list[Metric]) -> list[Metric]:
        """``metrics`` without those this handler already logged (same key and step)."""
        return [m for m in metrics if (m.key, m.step) not in self.sent]

    def attach(self) -> EpochMetricsHandler:
        logging.getLogger(PACKAGE_LOGGER).addHandler(self)
        return self

    def detach(self) -> None:
        logging.getLogger(PACKAGE_LOGGER).removeHandler(self)
