"""What the catalog says to track (``conf/base/catalog.yml``); no dataset is named here.

Two ways, both on the catalog entry:

- a file is logged as an artifact by wrapping its dataset in kedro-mlflow's
  ``kedro_mlflow.io.artifacts.MlflowArtifactDataset`` (``artifact_path:``
  chooses the folder in the run);
- what a file cannot say by itself is declared under ``metadata: mlflow:`` and
  logged by ``RunContentHooks``::

      metadata:
        mlflow:
          metrics: history            # per-epoch Keras history: step = epoch
          metrics: evaluation_report  # test_* / test_tuned_* / validation_* values
          metrics: cross_validation   # cv_<metric>_mean/_sd/_min/_max, cv_pooled_auc
          metric_prefix: ensemble_    # before each metric's name (ensemble_test_auc)
          run: namespace              # in a child run per namespace (fold_3.test_metrics ->
                                      #   the child run fold_3 of the active run)
          model: keras                # a Keras model, MLflow Keras flavour, named as the dataset
          model: servable             # a ServableModel (network + inference settings), pyfunc,
          name: model                 #   logged as runs:/<id>/model (default: the dataset name),
          registered_model: chest-xray  # registered under this name (optional),
          champion_alias: champion    #   this alias on the best validation AUC (optional)
          input: split                # lineage: mlflow.log_input, context "split"

A key or value not listed here is reported (a warning naming the dataset) when
a run starts, never ignored in silence.
"""

from __future__ import annotations

from typing import Any, Literal

from kedro.io import AbstractDataset
from kedro_mlflow.io.artifacts.mlflow_artifact_dataset import (
    _is_instance_mlflow_artifact_dataset,
)
from pydantic import BaseModel, ConfigDict, model_validator

METADATA_KEY = "mlflow"

MetricKind = Literal["history", "evaluation_report", "cross_validation"]
RunScope = Literal["active", "namespace"]
ModelFlavour = Literal["keras", "servable"]


class Declaration(BaseModel):
    """``metadata.mlflow`` of one catalog entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metrics: MetricKind | None = None
    metric_prefix: str = ""  # e.g. ensemble_: two reports of one kind in one run
    model: ModelFlavour | None = None
    name: str | None = None  # the model's name in the run (default: the dataset's)
    registered_model: str | None = None  # servable only: register each logged version
    champion_alias: str | None = None  # ... and move this alias by validation AUC
    input: str | None = None  # the MLflow dataset context, e.g. "split"
    run: RunScope = "active"  # namespace: a child run of the active one per namespace

    @model_validator(mode="after")
    def _prefix_needs_metrics(self) -> Declaration:
        if self.metric_prefix and self.metrics is None:
            raise ValueError("metric_prefix needs metrics")
        return self

    @model_validator(mode="after")
    def _child_runs_hold_metrics_only(self) -> Declaration:
        if self.run == "namespace" and (self.model or self.input):
            raise ValueError("run: namespace takes metrics only (models, inputs: the active run)")
        return self

    @model_validator(mode="after")
    def _registry_needs_servable(self) -> Declaration:
        if self.registered_model and self.model != "servable":
            raise ValueError("registered_model needs model: servable")
        if self.champion_alias and not self.registered_model:
            raise ValueError("champion_alias needs registered_model")
        return self


def declaration_of(dataset: AbstractDataset | None) -> Declaration | None:
    """The dataset's ``metadata.mlflow``, validated; None when it has none.

    Raises pydantic's ``ValidationError`` for an unknown key or value.
    """
    metadata: Any = getattr(dataset, "metadata", None) or {}
    declared = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
    if declared is None:
        return None
    return Declaration.model_validate(declared)


def is_artifact_dataset(dataset: AbstractDataset | None) -> bool:
    """Wrapped in ``MlflowArtifactDataset``: its file is logged when saved.

    kedro-mlflow builds the wrapper class per dataset type (it subclasses the
    wrapped dataset), so ``isinstance`` cannot tell: this is kedro-mlflow's own test.
    """
    return dataset is not None and _is_instance_mlflow_artifact_dataset(dataset)


def is_tracked(dataset: AbstractDataset | None) -> bool:
    """Logged to MLflow one way or the other (the catalog guard test relies on this)."""
    return is_artifact_dataset(dataset) or declaration_of(dataset) is not None
