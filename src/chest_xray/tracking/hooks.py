"""Project hooks: what every tracked ``kedro run`` leaves in MLflow, on top of kedro-mlflow.

kedro-mlflow (registered through its entry point) opens the run, points MLflow
at ``conf/*/mlflow.yml`` and logs ``params:`` inputs whole. These hooks add
what makes runs comparable and trustworthy: typed parameters field by field,
per-epoch and test metrics, the model, plots and data as artifacts, tags that
say which code, data and hardware produced the run, and a run status that is
never left at RUNNING by a kill. The helpers live in ``chest_xray.tracking.helpers_tmp``.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import mlflow
from kedro.config import MissingConfigException
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.pipeline import Node, Pipeline
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient
from pydantic import BaseModel

from chest_xray.tracking.helpers_tmp import (
    MAX_TAG_LENGTH,
    TAG_DATA_FINGERPRINT,
    TAG_END_REASON,
    TAG_ERROR,
    TAG_KEDRO_ENV,
    TAG_PIPELINE,
    check_tracking_server,
    close_stale_runs,
    evaluation_metrics,
    fingerprint,
    git_tags,
    history_metrics,
    keras_tags,
    log_keras_model,
    log_metric_batch,
    manifest_csv,
    process_tags,
    raise_on_sigterm,
    run_name,
)

logger = logging.getLogger(__name__)

# Catalog names the hooks log (see conf/base/catalog.yml).
MODEL = "model"
HISTORY = "training_history"
TEST_METRICS = "test_metrics"
SPLIT_MANIFEST = "split_manifest"
PLOT_SUFFIX = "_plot"


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


def _noop() -> None:
    return None


@contextlib.contextmanager
def _best_effort(what: str) -> Iterator[None]:
    """Tracking must never cost a result: after_node_run runs *before* outputs are saved."""
    try:
        yield
    except Exception:
        logger.warning("MLflow: %s failed; the run goes on", what, exc_info=True)


def configured_tracking_uri(context: KedroContext) -> str | None:
    """The tracking URI kedro-mlflow is about to use (mlflow.yml, else MLFLOW_TRACKING_URI)."""
    loader = context.config_loader
    if "mlflow" not in loader.config_patterns:
        loader.config_patterns.update({"mlflow": ["mlflow*", "mlflow*/**", "**/mlflow*"]})
    try:
        conf = loader["mlflow"] or {}
    except MissingConfigException:
        conf = {}
    server = conf.get("server") or {}
    return server.get("mlflow_tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")


class MlflowHooks:
    """Fill the MLflow run kedro-mlflow opens; close it properly however the run ends.

    Every hook is a no-op when no run is active (tracking disabled for the
    pipeline, e.g. ``--env=no_tracking``). kedro-mlflow's hooks are registered
    after the project's, so pluggy calls them first: the run already exists in
    ``before_pipeline_run`` and is already ended in ``on_pipeline_error``.
    """

    def __init__(self) -> None:
        self._run_id: str | None = None
        self._manifest_logged = False
        self._restore_signals: Callable[[], None] = _noop
        # Runs before MLflow's own atexit (LIFO), which would end an interrupted run
        # (KeyboardInterrupt, sys.exit) as FINISHED.
        atexit.register(self._close_interrupted_run)

    # ------------------------------------------------------------------ run start

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: KedroContext) -> None:
        """Before kedro-mlflow connects: fail fast on an unreachable server."""
        self._close_interrupted_run()
        check_tracking_server(configured_tracking_uri(context))

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline) -> None:
        self._run_id = None
        self._manifest_logged = False
        run = mlflow.active_run()
        if run is None:  # tracking disabled for this pipeline
            _forget_kedro_mlflow_run()
            return
        self._run_id = run.info.run_id
        client = MlflowClient()
        names = run_params.get("pipeline_names") or ["__default__"]
        if run.info.run_name == "+".join(names):  # kedro-mlflow's default name
            client.update_run(self._run_id, name=run_name(names, self._run_id))
        tags = {
            TAG_PIPELINE: "+".join(names),
            TAG_KEDRO_ENV: str(run_params.get("env")),
            **process_tags(),
        }
        with _best_effort("git tags"):
            tags |= git_tags(run_params["project_path"])
        if MODEL in pipeline.datasets():
            with _best_effort("Keras device tags"):
                tags |= keras_tags()
        mlflow.set_tags(tags)
        with _best_effort("closing stale runs"):
            close_stale_runs(client, run.info.experiment_id, self._run_id)
        self._restore_signals = raise_on_sigterm()

    # ---------------------------------------------------------------------- nodes

    @hook_impl
    def before_node_run(self, node: Node, inputs: dict[str, Any]) -> None:
        """Typed parameters field by field (``training.model.dropout``), the input manifest.

        kedro-mlflow logs a ``params:`` input whole, so a validated pydantic
        group would land as one long string.
        """
        if self._run_id is None or mlflow.active_run() is None:
            return
        for name, value in inputs.items():
            if name.startswith("params:") and isinstance(value, BaseModel):
                params = flatten(value.model_dump(mode="json"), prefix=name.removeprefix("params:"))
                mlflow.log_params({key: str(item)[:6000] for key, item in params.items()})
        if SPLIT_MANIFEST in inputs:
            with _best_effort("logging the split manifest"):
                self._log_manifest(inputs[SPLIT_MANIFEST])

    @hook_impl
    def after_node_run(self, node: Node, outputs: dict[str, Any]) -> None:
        if self._run_id is None or mlflow.active_run() is None:
            return
        for name, data in outputs.items():
            with _best_effort(f"logging {name}"):
                self._log_output(name, data)

    def _log_output(self, name: str, data: Any) -> None:
        if name == SPLIT_MANIFEST:
            self._log_manifest(data)
        elif name == HISTORY:
            log_metric_batch(MlflowClient(), self._run_id, history_metrics(data))
            mlflow.log_dict(data, "metrics/training_history.json")
        elif name == TEST_METRICS:
            from chest_xray.evaluation.metrics import flat_metrics

            mlflow.log_metrics(evaluation_metrics(flat_metrics(data)))
            mlflow.log_dict(data, "metrics/test_metrics.json")
        elif name == MODEL:
            info = log_keras_model(data, name=MODEL)
            logger.info("Logged the model to MLflow as %s", info.model_uri)
        elif name.endswith(PLOT_SUFFIX):
            from matplotlib.figure import Figure

            if isinstance(data, Figure):
                mlflow.log_figure(data, f"plots/{name.removesuffix(PLOT_SUFFIX)}.png")

    def _log_manifest(self, manifest: Any) -> None:
        """Fingerprint tag + CSV artifact, once per run (loaded by several nodes)."""
        if self._manifest_logged:
            return
        text = manifest_csv(manifest)
        mlflow.set_tag(TAG_DATA_FINGERPRINT, fingerprint(text))
        mlflow.log_text(text, "data/split_manifest.csv")
        self._manifest_logged = True

    # -------------------------------------------------------------------- run end

    @hook_impl
    def after_pipeline_run(self) -> None:
        """kedro-mlflow leaves its run active in-process (notebooks, tests): end it."""
        self._restore_signals()
        self._restore_signals = _noop
        self._run_id = None
        _end_runs("FINISHED")
        _forget_kedro_mlflow_run()

    @hook_impl
    def on_pipeline_error(self, error: Exception) -> None:
        """kedro-mlflow has ended the run FAILED: say why, as a tag and a traceback."""
        self._restore_signals()
        self._restore_signals = _noop
        run_id, self._run_id = self._run_id, None
        if run_id is not None:
            with _best_effort("recording the error"):
                client = MlflowClient()
                message = f"{type(error).__name__}: {error}"
                client.set_tag(run_id, TAG_ERROR, message[:MAX_TAG_LENGTH])
                client.log_text(
                    run_id, "".join(traceback.format_exception(error)), "error/traceback.txt"
                )
                if client.get_run(run_id).info.status == "RUNNING":
                    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
        _end_runs("FAILED")
        _forget_kedro_mlflow_run()

    def _close_interrupted_run(self) -> None:
        """A run whose pipeline neither finished nor failed (KeyboardInterrupt): KILLED."""
        self._restore_signals()
        self._restore_signals = _noop
        run_id, self._run_id = self._run_id, None
        if run_id is None:
            return
        with _best_effort("closing an interrupted run"):
            client = MlflowClient()
            client.set_tag(run_id, TAG_END_REASON, "interrupted before the pipeline ended")
            _end_runs("KILLED")
            client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))


def _forget_kedro_mlflow_run() -> None:
    """kedro-mlflow's hook is one instance per process and keeps the last run id: a later
    session with tracking disabled would reopen that run in ``before_node_run`` (or fail
    to find it in another store). Matters in notebooks and tests, not for the CLI."""
    with contextlib.suppress(ImportError):
        from kedro_mlflow.framework.hooks.mlflow_hook import mlflow_hook

        mlflow_hook.run_id = None


def _end_runs(status: str) -> None:
    while (run := mlflow.active_run()) is not None:
        logger.debug("Ending MLflow run %s as %s", run.info.run_id, status)
        mlflow.end_run(status)
