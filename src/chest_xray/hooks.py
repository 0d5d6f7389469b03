"""Project hooks: MLflow housekeeping that kedro-mlflow leaves to the project."""

from __future__ import annotations

import logging
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from kedro.pipeline import Node
from pydantic import BaseModel

logger = logging.getLogger(__name__)


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"dropout": 0.5}}`` -> ``{"model.dropout": 0.5}`` (lists stay whole)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


class MlflowHooks:
    """Log typed parameters field by field, and never leave a run open.

    kedro-mlflow logs a ``params:`` input whole, so a validated pydantic group
    would land as one truncated string; here every field becomes its own MLflow
    parameter (``training.model.dropout``). kedro-mlflow also leaves its run
    active in the Python process after ``session.run`` (harmless for the CLI,
    wrong for notebooks and tests): the run is ended here.
    """

    @hook_impl
    def before_node_run(self, node: Node, inputs: dict[str, Any]) -> None:
        if mlflow.active_run() is None:
            return
        for name, value in inputs.items():
            if name.startswith("params:") and isinstance(value, BaseModel):
                params = flatten(value.model_dump(mode="json"), prefix=name.removeprefix("params:"))
                mlflow.log_params({key: str(item)[:6000] for key, item in params.items()})

    @hook_impl
    def after_pipeline_run(self) -> None:
        _end_runs("FINISHED")

    @hook_impl
    def on_pipeline_error(self) -> None:
        _end_runs("FAILED")


def _end_runs(status: str) -> None:
    while (run := mlflow.active_run()) is not None:
        logger.debug("Ending MLflow run %s as %s", run.info.run_id, status)
        mlflow.end_run(status)
