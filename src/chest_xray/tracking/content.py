"""What a tracked run holds, on top of kedro-mlflow's own logging.

``RunContentHooks`` fills the run kedro-mlflow opens:

- its name (``training+evaluation-1a2b3c4d``) and identity tags (git, Keras devices);
- typed parameters field by field (``training.model.dropout``): kedro-mlflow logs
  a validated pydantic group as one long string;
- what the catalog declares under ``metadata.mlflow`` (see ``declarations``):
  metrics read from a saved dataset (a training history also live, epoch by epoch:
  ``live_metrics``), the model (registered, for a servable one), dataset lineage. Files wrapped in
  ``MlflowArtifactDataset`` are logged by kedro-mlflow itself when saved;
- with ``run: namespace``, those metrics in a child run per namespace (``child_runs``:
  a cross-validation fold), together with the parameters its nodes read.

It knows no dataset name: the catalog entries say what is logged, so renaming
an entry keeps its logging. Logging is best-effort: a failure is a warning and
never costs a result. Every hook is a no-op when no run is active.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from kedro.io import AbstractDataset, AbstractVersionedDataset, CatalogProtocol
from kedro.pipeline import Node, Pipeline
from mlflow.data.pandas_dataset import from_pandas
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient
from pydantic import BaseModel, ValidationError

from chest_xray.params import TrainingParams, dotted
from chest_xray.tracking.best_effort import best_effort
from chest_xray.tracking.child_runs import ChildRuns, namespace_of
from chest_xray.tracking.declarations import (
    Declaration,
    MetricKind,
    declaration_of,
    is_artifact_dataset,
)
from chest_xray.tracking.identity import (
    TAG_DATA_FINGERPRINT,
    TAG_RESUMED_AFTER_EPOCH,
    git_tags,
    kedro_mlflow_run_name,
    keras_tags,
    precision_policy,
    run_name,
)
from chest_xray.tracking.live_metrics import EpochMetricsHandler
from chest_xray.tracking.model_logging import log_keras_model

logger = logging.getLogger(__name__)

MAX_PARAM_LENGTH = 6000  # MLflow's limit


# ------------------------------------------------------------ values -> MLflow


def history_metrics(history: dict[str, list[float]]) -> list[Metric]:
    """Per-epoch Keras metrics (loss, accuracy, auc, val_*) with ``step`` = epoch (1-based)."""
    epochs = history.get("epoch") or list(range(1, 1 + max(map(len, history.values()), default=0)))
    now = int(time.time() * 1000)
    return [
        Metric(key=key, value=float(value), timestamp=now, step=int(epoch))
        for key, values in history.items()
        if key != "epoch"
        for epoch, value in zip(epochs, values, strict=False)
    ]


def evaluation_report_metrics(report: dict[str, Any]) -> list[Metric]:
    """The evaluation report's figures, one value each (``flat_metrics`` names them).

    With the calibration figures (``test_ece``, ``test_brier``, ...) when the report has
    them, so runs compare on calibration as on accuracy.
    """
    from chest_xray.evaluation.calibration import flat_calibration
    from chest_xray.evaluation.metrics import flat_metrics

    now = int(time.time() * 1000)
    flat = flat_metrics(report)
    if "skipped" not in report:
        flat |= flat_calibration(report.get("calibration"))
    return [Metric(key=key, value=value, timestamp=now, step=0) for key, value in flat.items()]


def resumed_after(history: dict[str, list[float]]) -> int:
    """The epochs a resumed training did not run again (its history starts later), else 0."""
    epochs = history.get("epoch") or []
    return int(epochs[0]) - 1 if epochs else 0


def cross_validation_metrics(summary: dict[str, Any]) -> list[Metric]:
    """``cv_<metric>_<statistic>`` for every metric of the folds, and ``cv_pooled_auc``."""
    now = int(time.time() * 1000)
    values = {
        f"cv_{metric}_{statistic}": value
        for metric, statistics in summary["statistics"].items()
        for statistic, value in statistics.items()
    }
    values["cv_pooled_auc"] = summary["pooled_out_of_fold"]["auc"]
    return [
        Metric(key=key, value=float(value), timestamp=now, step=0)
        for key, value in values.items()
        if value is not None
    ]


METRIC_READERS: dict[MetricKind, Callable[[Any], list[Metric]]] = {
    "history": history_metrics,
    "evaluation_report": evaluation_report_metrics,
    "cross_validation": cross_validation_metrics,
}


def declared_metrics(declaration: Declaration, data: Any) -> list[Metric]:
    """The metrics ``declaration.metrics`` reads from ``data``, named with its prefix."""
    if declaration.metrics is None:
        return []
    metrics = METRIC_READERS[declaration.metrics](data)
    if not declaration.metric_prefix:
        return metrics
    return [
        Metric(f"{declaration.metric_prefix}{m.key}", m.value, m.timestamp, m.step) for m in metrics
    ]


def local_file(dataset: AbstractDataset) -> Path | None:
    """The local file a file-based dataset reads (its current version), else None."""
    if getattr(dataset, "_protocol", "file") not in {"file", None}:
        return None
    if isinstance(dataset, AbstractVersionedDataset):
        return Path(str(dataset._get_load_path()))
    filepath = getattr(dataset, "_filepath", None)
    return None if filepath is None else Path(str(filepath))


def data_fingerprint(digests: dict[str, str]) -> str:
    """The run's data fingerprint: MLflow's digest of its input (``name:digest,...`` if several)."""
    if len(digests) == 1:
        return next(iter(digests.values()))
    return ",".join(f"{name}:{digest}" for name, digest in sorted(digests.items()))


# ------------------------------------------------------------------- the hooks


class RunContentHooks:
    """Name, tags, typed parameters and the catalog-declared content of the active run."""

    def __init__(self) -> None:
        self._run_id: str | None = None
        self._catalog: CatalogProtocol | None = None
        self._declared: dict[str, Declaration] = {}
        self._inputs: dict[str, str] = {}  # lineage logged in this run: name -> digest
        self._live: EpochMetricsHandler | None = None  # per-epoch metrics while training
        self._children: ChildRuns | None = None  # run: namespace -> a child run each
        self._child_namespaces: set[str] = set()

    def _reset(self, status: int = RunStatus.FINISHED) -> None:
        """Forget the run; end its child runs with ``status`` (FINISHED by default)."""
        if self._children is not None:
            with best_effort("ending the child runs"):
                self._children.end(RunStatus.to_string(status))
        self._children, self._child_namespaces = None, set()
        self._run_id, self._catalog, self._declared, self._inputs = None, None, {}, {}
        if self._live is not None:
            self._live.detach()
            self._live = None

    # ------------------------------------------------------------------ run start

    @hook_impl
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: CatalogProtocol
    ) -> None:
        self._reset()
        run = mlflow.active_run()
        if run is None:  # tracking disabled for this pipeline
            _stop_artifact_logging(catalog, pipeline.datasets())
            return
        self._run_id = run.info.run_id
        self._catalog = catalog
        self._declared = _declarations(catalog, pipeline.datasets())
        client, run_id = MlflowClient(), run.info.run_id
        self._child_namespaces = {
            namespace
            for name, declared in self._declared.items()
            if declared.run == "namespace" and (namespace := namespace_of(name))
        }
        if self._child_namespaces:
            self._children = ChildRuns(run_id)
        histories = [d for d in self._declared.values() if d.metrics == "history"]
        # Live epochs only when every history goes to this run: the log records do not
        # say which fold an epoch belongs to (children get theirs when it is saved).
        if histories and all(d.run == "active" for d in histories):
            self._live = EpochMetricsHandler(run_id).attach()
        names = run_params.get("pipeline_names")
        if run.info.run_name == kedro_mlflow_run_name(names):  # not named in mlflow.yml
            with best_effort("naming the run"):
                client.update_run(run_id, name=run_name(names, run_id))
        tags: dict[str, str] = {}
        with best_effort("git tags"):
            tags |= git_tags(run_params["project_path"])
        if any(declaration.model for declaration in self._declared.values()):
            with best_effort("Keras device tags"):
                tags |= keras_tags()
        with best_effort("tagging the run"):
            client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    # ---------------------------------------------------------------------- nodes

    @hook_impl
    def before_node_run(self, node: Node, inputs: dict[str, Any]) -> None:
        """Typed parameters field by field (``training.model.dropout``), in the run and, for
        a node of a namespace with a child run, in that child too; a training node's also
        the precision policy it trains in (``training.precision_policy``)."""
        run_id = self._run_id
        if run_id is None:
            return
        params: dict[str, Any] = {}
        trains = any(
            getattr(self._declared.get(out), "metrics", None) == "history" for out in node.outputs
        )
        for name, value in inputs.items():
            if name.startswith("params:") and isinstance(value, BaseModel):
                group = name.removeprefix("params:")
                params |= dotted(value.model_dump(mode="json"), prefix=group)
                if trains and isinstance(value, TrainingParams):  # what `auto` resolves to
                    params[f"{group}.precision_policy"] = precision_policy(value)
        if not params:
            return
        batch = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in params.items()]
        with best_effort("logging parameters"):
            MlflowClient().log_batch(run_id, params=batch)
        namespace = node.namespace
        if self._children is not None and namespace in self._child_namespaces:
            with best_effort(f"logging the parameters of {namespace}"):
                MlflowClient().log_batch(self._children.run_id(namespace), params=batch)

    @hook_impl
    def after_dataset_loaded(self, dataset_name: str, data: Any) -> None:
        run_id, declaration = self._run_id, self._declared.get(dataset_name)
        if run_id is None or declaration is None or declaration.input is None:
            return
        with best_effort(f"logging the lineage of {dataset_name}"):
            self._log_input(run_id, dataset_name, data, declaration.input, loaded=True)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any) -> None:
        run_id, declaration = self._run_id, self._declared.get(dataset_name)
        if run_id is None or declaration is None:
            return
        namespace = namespace_of(dataset_name)
        if declaration.run == "namespace" and self._children is not None and namespace:
            with best_effort(f"logging the metrics of {dataset_name}"):
                child = self._children.run_id(namespace)
                metrics = declared_metrics(declaration, data)
                MlflowClient().log_batch(child, metrics=metrics, synchronous=True)
            return
        if declaration.metrics is not None:
            with best_effort(f"logging the metrics of {dataset_name}"):
                metrics = declared_metrics(declaration, data)
                if declaration.metrics == "history" and self._live is not None:
                    metrics = self._live.unsent(metrics)  # the epochs logged live already
                MlflowClient().log_batch(run_id, metrics=metrics, synchronous=True)
            if declaration.metrics == "history" and (resumed := resumed_after(data)):
                with best_effort(f"tagging {dataset_name} as resumed"):
                    MlflowClient().set_tag(run_id, TAG_RESUMED_AFTER_EPOCH, str(resumed))
        if declaration.model is not None:
            with best_effort(f"logging the model {dataset_name}"):
                self._require_active()
                self._log_model(run_id, data, declaration, declaration.name or dataset_name)
        if declaration.input is not None:
            with best_effort(f"logging the lineage of {dataset_name}"):
                self._log_input(run_id, dataset_name, data, declaration.input, loaded=False)

    def _log_model(self, run_id: str, data: Any, declaration: Declaration, name: str) -> None:
        """The model in the run (``runs:/<run id>/<name>``), registered if declared so."""
        if declaration.model == "keras":
            log_keras_model(data, name=name)
            logger.info("Logged the model to MLflow as runs:/%s/%s", run_id, name)
            return
        # Imported here: every `kedro` command loads these hooks, few runs package a model.
        from chest_xray.inference.packaging import log_servable_model
        from chest_xray.inference.registry import register_and_promote

        info = log_servable_model(data, name=name)
        logger.info("Logged the servable model to MLflow as runs:/%s/%s", run_id, name)
        if declaration.registered_model:
            registration = register_and_promote(
                info.model_uri,
                declaration.registered_model,
                declaration.champion_alias,
                data.settings.validation_auc,
            )
            tags = {"registered_model_version": f"{registration.name}/{registration.version}"}
            if registration.champion:
                # The alias it won: the declared one, per task (champion_multiclass ...).
                tags["registered_model_alias"] = str(
                    registration.alias or declaration.champion_alias
                )
            MlflowClient().log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def _require_active(self) -> None:
        """The fluent API (models, inputs) writes to this thread's active run: ours."""
        run = mlflow.active_run()
        if run is None or run.info.run_id != self._run_id:
            raise RuntimeError(f"MLflow run {self._run_id} is not active in this thread")

    def _log_input(self, run_id: str, name: str, data: Any, context: str, *, loaded: bool) -> None:
        """MLflow dataset input + the data_fingerprint tag, once per run.

        Its digest is MLflow's, of the data as stored: a saved frame is read back,
        so the run that writes a file and the runs that read it agree. A run that
        only reads an ``MlflowArtifactDataset`` also gets a copy of the file.
        """
        if name in self._inputs or self._catalog is None:
            return
        self._require_active()
        import pandas as pd

        dataset = self._catalog.get(name)
        if dataset is None:
            return
        if not loaded:
            data = dataset.load()
        if not isinstance(data, pd.DataFrame):
            raise TypeError(f"lineage needs a pandas DataFrame, {name} is {type(data).__name__}")
        path = local_file(dataset)
        source = str(path.resolve()) if path is not None else None
        with warnings.catch_warnings():
            # MLflow's own noise: it registers the same local source for the "" and "file"
            # schemes (so a path "can be interpreted in multiple ways"), and its digest calls
            # a pandas API that pandas 4 changes.
            warnings.filterwarnings("ignore", "The specified dataset source can be interpreted")
            warnings.filterwarnings("ignore", "Starting with pandas version 4.0")
            lineage = from_pandas(data, source=source, name=name)  # type: ignore[arg-type]
        mlflow.log_input(lineage, context=context)
        self._inputs[name] = lineage.digest
        client = MlflowClient()
        client.set_tag(run_id, TAG_DATA_FINGERPRINT, data_fingerprint(self._inputs))
        if loaded and path is not None and is_artifact_dataset(dataset):
            client.log_artifact(run_id, str(path), getattr(dataset, "artifact_path", None))

    # -------------------------------------------------------------------- run end

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._reset()

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._reset(RunStatus.FAILED)


def _declarations(catalog: CatalogProtocol, names: Iterable[str]) -> dict[str, Declaration]:
    """``metadata.mlflow`` of the run's datasets (factory entries resolved here)."""
    declared = {}
    for name in sorted(names):
        try:
            declaration = declaration_of(catalog.get(name))
        except ValidationError as err:
            logger.warning(
                "MLflow: metadata.mlflow of catalog entry %r is not understood, so none "
                "of it is logged: %s",
                name,
                err,
            )
            continue
        if declaration is not None:
            declared[name] = declaration
    return declared


def _stop_artifact_logging(catalog: CatalogProtocol, names: Iterable[str]) -> None:
    """Tracking disabled: no ``MlflowArtifactDataset`` of the run may log (and so start a run).

    kedro-mlflow switches off the datasets already in the catalog, but one made
    from a dataset factory (``{name}_plot``) only exists once the runner resolves
    it, after ``before_pipeline_run``: resolve the run's datasets here first.
    (kedro-mlflow switches logging back on after the run.)
    """
    for name in names:
        dataset = catalog.get(name)
        if is_artifact_dataset(dataset):
            dataset._logging_activated = False  # type: ignore[union-attr]
