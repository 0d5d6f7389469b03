"""The Kedro side of multi-worker training: only the chief saves and tracks.

With ``training.distribution: multi_worker`` every worker runs the same
``kedro run --pipelines=training``; ``chest_xray.modeling.distributed`` says from TF_CONFIG
which one is the chief. ``MultiWorkerHooks`` then, on every worker:

- logs the process's role as the session starts;
- creates the ``MultiWorkerMirroredStrategy`` before the pipeline runs, so that no hook
  (listing Keras devices, say) runs a TensorFlow op first, which TensorFlow forbids;

and on the other workers only:

- points MLflow at an in-memory store before anything connects (as ``--env=no_tracking``
  does; ``conf/base/mlflow.yml`` reads ``MLFLOW_TRACKING_URI``), so they open no store,
  create no experiment and race the chief for nothing;
- adds the run's pipelines to kedro-mlflow's ``tracking.disable_tracking.pipelines``,
  its documented switch, so kedro-mlflow starts no run for them and stops its datasets
  logging (the project's tracking hooks do nothing without a run);
- replaces every dataset the run writes with a ``MemoryDataset``: the nodes still run
  and hand their outputs on, but nothing reaches the disk or bucket the chief reads.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from kedro.config import MissingConfigException
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.io import CatalogProtocol, MemoryDataset
from kedro.pipeline import Pipeline

from chest_xray.modeling.distributed import (
    WorkerRole,
    multi_worker_strategy,
    require_tensorflow_backend,
    worker_role,
)

logger = logging.getLogger(__name__)

# Where a non-chief worker's MLflow client points: a store that lives and dies with it.
NO_STORE_URI = "sqlite:///:memory:"


def configured_distribution(context: KedroContext) -> str | None:
    """``training.distribution`` as this session configures it (``--params`` included)."""
    try:
        parameters = context.config_loader["parameters"] or {}
    except MissingConfigException:
        return None
    except (TypeError, ValueError):
        # --params that cannot be merged (a value inside a list): RuntimeParamsHooks stops
        # the run right after, naming the key; this hook must not pre-empt that message.
        return None
    training = parameters.get("training") or {}
    return training.get("distribution") if isinstance(training, dict) else None


class MultiWorkerHooks:
    """Every worker trains; only the chief writes and tracks (see the module docstring)."""

    def __init__(self) -> None:
        self._role: WorkerRole | None = None
        self._context: KedroContext | None = None

    # Registered last in settings.HOOKS: among the ``tryfirst`` hooks, called first, so
    # before the tracking hooks check the store and kedro-mlflow connects to it.
    @hook_impl(tryfirst=True)
    def after_context_created(self, context: KedroContext) -> None:
        self._role, self._context = None, context
        if configured_distribution(context) != "multi_worker":
            return
        import keras  # the backend, before a worker waits for a cluster it cannot join

        require_tensorflow_backend(keras.backend.backend())
        role = self._role = worker_role()  # an error naming TF_CONFIG if it is unusable
        if role.is_chief:
            logger.info(
                "Multi-worker training: this process is %s: it saves the outputs and "
                "logs the MLflow run",
                role.describe(),
            )
            return
        logger.info(
            "Multi-worker training: this process is %s: it trains its share of each batch, "
            "writes no output and logs nothing to MLflow",
            role.describe(),
        )
        os.environ["MLFLOW_TRACKING_URI"] = NO_STORE_URI

    @hook_impl(tryfirst=True)
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: CatalogProtocol
    ) -> None:
        role = self._role
        if role is None:
            return
        multi_worker_strategy()  # before any hook or node runs a TensorFlow op
        if role.is_chief:
            return
        self._disable_tracking(run_params)
        outputs = sorted(pipeline.all_outputs())
        for name in outputs:
            # "assign": the model is handed on as is (a deep copy of a Keras model is
            # neither cheap nor always possible).
            catalog[name] = MemoryDataset(copy_mode="assign")
        logger.info(
            "Worker %s keeps its outputs in memory, unsaved: %s", role.name, ", ".join(outputs)
        )

    def _disable_tracking(self, run_params: dict[str, Any]) -> None:
        """kedro-mlflow's own switch, for this run's pipelines (read in its
        ``before_pipeline_run``, which runs after this ``tryfirst`` hook)."""
        config = getattr(self._context, "mlflow", None)  # set by kedro-mlflow at start
        if config is None:
            return
        names = run_params.get("pipeline_names") or ["__default__"]
        if isinstance(names, str):
            names = [names]
        disabled = config.tracking.disable_tracking.pipelines
        disabled.extend(name for name in names if name not in disabled)
