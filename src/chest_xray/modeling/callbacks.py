"""The Keras callbacks every training runs with: resume-on-restart, early stopping and
one log line per epoch.

Apart from the trainer's fit so that the list (and its order) reads in one place; the
checkpoint folder ``BackupAndRestore`` writes into is chosen by ``modeling.checkpoints``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import keras

from chest_xray.modeling.params import TrainingParams


def training_callbacks(
    params: TrainingParams, n_train: int, log: logging.Logger, checkpoint_dir: str
) -> list[keras.callbacks.Callback]:
    """Resume-on-restart first, so later callbacks see the restored epoch."""
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.BackupAndRestore(
            backup_dir=checkpoint_dir, save_freq="epoch", delete_checkpoint=True
        ),
    ]
    stopping = params.early_stopping
    if stopping.enabled:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=stopping.monitor,
                patience=stopping.patience,
                restore_best_weights=stopping.restore_best_weights,
            )
        )
    callbacks.append(EpochLogger(log, n_train, params.epochs))
    return callbacks


class EpochLogger(keras.callbacks.Callback):
    """One log line per epoch: Kedro's log keeps the curve without a progress bar.

    Each record also carries the epoch's metrics (``record.epoch_metrics``, with
    ``record.epoch`` 1-based), so a logging handler can follow training live (the
    tracking hooks send them to the MLflow run) without this module knowing it.
    """

    def __init__(self, log: logging.Logger, n_images: int, epochs: int) -> None:
        super().__init__()
        self.log = log
        self.n_images = n_images
        self.epochs = epochs
        self._start = time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        seconds = time.perf_counter() - self._start
        self.log.info(
            "epoch %d/%d: loss %.4f accuracy %.4f val_loss %.4f val_accuracy %.4f "
            "(%.1f s, %.0f images/s)",
            epoch + 1,
            self.epochs,
            logs.get("loss", float("nan")),
            logs.get("accuracy", float("nan")),
            logs.get("val_loss", float("nan")),
            logs.get("val_accuracy", float("nan")),
            seconds,
            self.n_images / seconds if seconds > 0 else float("nan"),
            extra={"epoch": epoch + 1, "epoch_metrics": _scalars(logs)},
        )


def _scalars(logs: dict[str, Any]) -> dict[str, float]:
    """The epoch's metrics as plain floats (a value that is not one number is left out)."""
    scalars = {}
    for key, value in logs.items():
        with contextlib.suppress(TypeError, ValueError):
            scalars[key] = float(value)
    return scalars
