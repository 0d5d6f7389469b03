"""``RunSummaryHooks``: the run summary (``run_summary``) printed when a ``kedro run`` ends.

What the run made is known from the datasets it saved (``after_dataset_saved``): the
reports are kept as saved, a table only as its counts (``run_summary.table_counts``), so
nothing large stays in memory. The MLflow run is read in ``before_pipeline_run``:
kedro-mlflow (a plugin, registered after the project's hooks, so called first) has started
it by then, and it has ended it in its own ``after_pipeline_run`` before this one runs.

The summary never fails a run: a problem in it is logged as a warning, and the run's
outputs and exit status stay what they are.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import mlflow
import pandas as pd
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.io import CatalogProtocol, MemoryDataset
from kedro.pipeline import Pipeline

from chest_xray.summary import failure
from chest_xray.summary.run_summary import (
    REPORTS,
    TRAINING_HISTORY,
    MlflowRunInfo,
    RunFacts,
    summary_text,
    table_counts,
)

logger = logging.getLogger(__name__)

DROPPED_ITEMS = "dropped_items"
SERVABLE_MODEL = "servable_model"


class RunSummaryHooks:
    """Gathers ``RunFacts`` while the pipeline runs; prints the summary at its end."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out  # None: the standard output of the moment (pytest may replace it)
        self._context: KedroContext | None = None
        self._facts: RunFacts | None = None

    @hook_impl
    def after_context_created(self, context: KedroContext) -> None:
        self._context = context  # kedro-mlflow's settings (its ``ui`` host and port) on it

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        self._facts = RunFacts(
            env=run_params.get("env") or "local",
            pipelines=list(run_params.get("pipeline_names") or ["__default__"]),
            mlflow=self._mlflow_run(),
        )

    def _mlflow_run(self) -> MlflowRunInfo | None:
        run = mlflow.active_run()
        if run is None:  # tracking disabled for this pipeline (conf/no_tracking)
            return None
        ui = getattr(getattr(self._context, "mlflow", None), "ui", None)
        return MlflowRunInfo(
            run_id=run.info.run_id,
            experiment_id=run.info.experiment_id,
            tracking_uri=mlflow.get_tracking_uri(),
            ui_host=str(getattr(ui, "host", "127.0.0.1")),
            ui_port=str(getattr(ui, "port", "5000")),
        )

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any) -> None:
        facts = self._facts
        if facts is None:
            return
        try:
            record_saved(facts, dataset_name, data)
        except Exception as error:  # the summary must never stop a run
            logger.debug("Run summary: could not record %s: %s", dataset_name, error)

    @hook_impl
    def after_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: CatalogProtocol
    ) -> None:
        facts, self._facts = self._facts, None
        if facts is None:
            return
        try:
            complete_facts(facts, pipeline, catalog)
            text = summary_text(facts)
        except Exception as error:  # the summary must never stop a run
            logger.warning("No run summary: %s: %s", type(error).__name__, error)
            return
        out = self._out or sys.stdout
        print(f"\n{text}\n", file=out, flush=True)

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._facts = None  # Kedro reports the error; a summary would only hide it


class InputErrorHooks:
    """A run stopped by bad input prints the project's message, not a traceback
    (``failure``). Registered last, so its ``tryfirst`` hook runs before any other
    project hook's: ``RuntimeParamsHooks`` refuses unknown ``--params`` in its own."""

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: KedroContext) -> None:
        failure.install()


def record_saved(facts: RunFacts, name: str, data: Any) -> None:
    """Note one saved dataset: a report as it is, a table as its counts."""
    facts.made[name] = None  # its location is read from the catalog at the end
    if name in REPORTS and isinstance(data, dict):
        facts.reports[name] = data
    elif name == TRAINING_HISTORY and isinstance(data, dict):
        facts.history = data
    elif name == SERVABLE_MODEL:
        # InferenceSettings.decision: its threshold in the units it applies it in
        # (calibrated probabilities, once a temperature is packaged).
        decision = getattr(getattr(data, "settings", None), "decision", None)
        facts.packaged_decision = decision if isinstance(decision, str) else None
    elif isinstance(data, pd.DataFrame):
        counts = table_counts(name, data)
        if counts is not None:
            facts.counts[name] = counts


def complete_facts(facts: RunFacts, pipeline: Pipeline, catalog: CatalogProtocol) -> None:
    """Locations from the catalog; what the run did not record itself (ParallelRunner
    calls dataset hooks in its worker processes); the packaged threshold rule; for a run
    that evaluated without data_processing, what the last one dropped."""
    if not facts.made:
        for name in sorted(pipeline.all_outputs()):
            facts.made[name] = None
            if name in REPORTS and catalog.exists(name):
                facts.reports[name] = catalog.load(name)
    for name in facts.made:
        facts.made[name] = dataset_location(catalog, name)
    facts.model_threshold = _model_threshold(catalog)
    if facts.reports and DROPPED_ITEMS not in facts.counts and catalog.exists(DROPPED_ITEMS):
        counts = table_counts(DROPPED_ITEMS, catalog.load(DROPPED_ITEMS))
        if counts is not None:
            facts.counts[DROPPED_ITEMS] = counts
            facts.counts_from_earlier[DROPPED_ITEMS] = dataset_location(catalog, DROPPED_ITEMS)


def _model_threshold(catalog: CatalogProtocol) -> str:
    """``evaluation.model_threshold`` (validated ``EvaluationParams``), else the default."""
    if "params:evaluation" not in catalog:
        return "validation"
    evaluation = catalog.load("params:evaluation")
    value = getattr(evaluation, "model_threshold", None)
    if value is None and isinstance(evaluation, dict):
        value = evaluation.get("model_threshold")
    return str(value or "validation")


def dataset_location(catalog: CatalogProtocol, name: str) -> str | None:
    """Where a dataset's data is: its file or folder (this run's version of a versioned
    one), relative to the working directory when inside it; None when in memory."""
    dataset = catalog.get(name)
    if dataset is None or isinstance(dataset, MemoryDataset):
        return None
    described = dataset._describe()  # every file-based Kedro dataset names its path here
    path = described.get("filepath") or described.get("path")
    if path is None:
        return None
    version = getattr(described.get("version"), "save", None)
    location = str(path)
    if version:
        location = f"{location}/{version}/{Path(location).name}"
    return _relative(location)


def _relative(location: str) -> str:
    if "://" in location:
        return location
    cwd = Path.cwd()
    path = Path(location)
    if path.is_absolute() and path.is_relative_to(cwd):
        return os.path.relpath(path, cwd)
    return location
