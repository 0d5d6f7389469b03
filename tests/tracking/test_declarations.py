"""What is tracked is declared in the catalog: RunContentHooks on real DataCatalogs, fast.

The entries here have names the project never uses: the hooks find what to log
in each entry (the MlflowArtifactDataset wrapper, ``metadata.mlflow``), so a
renamed entry keeps its logging. The guard tests keep the project's catalog
and the tracking package honest.
"""

from __future__ import annotations

import ast
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib
import mlflow
import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import DataCatalog
from kedro.pipeline import Node, Pipeline
from kedro.runner import SequentialRunner
from matplotlib.figure import Figure
from mlflow.tracking import MlflowClient
from pydantic import ValidationError

from chest_xray import settings
from chest_xray.evaluation.metrics import evaluation_report, flat_metrics
from chest_xray.params import EvaluationParams
from chest_xray.pipelines.cross_validation.pipeline import create_pipeline as cross_validation
from chest_xray.pipelines.data_processing.pipeline import create_pipeline as data_processing
from chest_xray.pipelines.evaluation.pipeline import create_pipeline as evaluation
from chest_xray.pipelines.fold_count import DEFAULT_FOLDS
from chest_xray.pipelines.training.pipeline import create_pipeline as training
from chest_xray.tracking.content import RunContentHooks, declared_metrics, history_metrics
from chest_xray.tracking.declarations import (
    Declaration,
    declaration_of,
    is_artifact_dataset,
    is_tracked,
)
from tests.conftest import REPO
from tests.tracking.support import artifact_paths, mlflow_digest

matplotlib.use("Agg")

ARTIFACT = "kedro_mlflow.io.artifacts.MlflowArtifactDataset"

# Datasets of layer reporting/models that are deliberately not logged to MLflow.
NOT_TRACKED = {
    "dataset_summary": "the same counts are logged as the dataset_summary figure",
    "dropped_items": "a per-file list for fixing the download; derivable from the inputs",
    "model": "the network is logged inside servable_model (runs:/<id>/model), with its settings",
    **{
        f"fold_{i}.model": "a fold's network estimates, it ships nothing (its metrics are logged)"
        for i in range(1, DEFAULT_FOLDS + 1)
    },
}


# ------------------------------------------------------------- a tracked catalog


def catalog_config(root: Path, **cohort_metadata: Any) -> dict[str, Any]:
    """Entries named unlike the project's, tracked the project's ways."""
    return {
        "fit_log": {
            "type": ARTIFACT,
            "dataset": {"type": "json.JSONDataset", "filepath": str(root / "fit_log.json")},
            "artifact_path": "metrics",
            "metadata": {"mlflow": {"metrics": "history"}},
        },
        "scorecard": {
            "type": "json.JSONDataset",
            "filepath": str(root / "scorecard.json"),
            "metadata": {"mlflow": {"metrics": "evaluation_report"}},
        },
        "cohort": {
            "type": ARTIFACT,
            "dataset": {
                "type": "pandas.CSVDataset",
                "filepath": str(root / "cohort.csv"),
                "save_args": {"index": False},
                "load_args": {"keep_default_na": False},
            },
            "artifact_path": "data",
            "metadata": {"mlflow": {"input": "cohort", **cohort_metadata}},
        },
        "{figure}_chart": {
            "type": ARTIFACT,
            "dataset": {
                "type": "matplotlib.MatplotlibDataset",
                "filepath": str(root / "{figure}.png"),
            },
            "artifact_path": "plots",
        },
        "scratch": {"type": "json.JSONDataset", "filepath": str(root / "scratch.json")},
    }


def make_cohort() -> pd.DataFrame:
    return pd.DataFrame({"image_id": ["a", "b", "c"], "split": ["train", "test", ""]})


def fit(cohort: pd.DataFrame) -> tuple[dict[str, list[float]], dict[str, Any], dict[str, int]]:
    history = {"loss": [0.9, 0.5], "val_auc": [0.6, 0.7], "epoch": [1, 2]}
    report = evaluation_report(
        [0, 1, 0, 1], [0.2, 0.8, 0.4, 0.6], [0, 1, 1, 0], [0.1, 0.9, 0.7, 0.3], EvaluationParams()
    )
    return history, report, {"rows": len(cohort)}


def draw(history: dict[str, list[float]]) -> Figure:
    figure = Figure()
    figure.add_subplot().plot(history["loss"])
    return figure


WRITE = Pipeline([Node(make_cohort, None, "cohort", name="make_cohort")])
READ = Pipeline(
    [
        Node(fit, "cohort", ["fit_log", "scorecard", "scratch"], name="fit"),
        Node(draw, "fit_log", "loss_chart", name="draw"),
    ]
)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MlflowClient]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("declared")
    yield MlflowClient(uri)
    while mlflow.active_run():
        mlflow.end_run()


def run_tracked(pipeline: Pipeline, catalog: DataCatalog, project: Path) -> str | None:
    """As ``kedro run`` would, with only RunContentHooks: in a started run, if ``tracked``."""
    manager = _create_hook_manager()
    manager.register(RunContentHooks())
    run_params = {"pipeline_names": ["declared"], "env": "test", "project_path": str(project)}
    run = mlflow.active_run()
    manager.hook.before_pipeline_run(run_params=run_params, pipeline=pipeline, catalog=catalog)
    result = SequentialRunner().run(pipeline, catalog, manager)
    manager.hook.after_pipeline_run(
        run_params=run_params, run_result=result, pipeline=pipeline, catalog=catalog
    )
    mlflow.end_run()
    return None if run is None else run.info.run_id


def test_renamed_catalog_entries_keep_their_logging(tmp_path: Path, store: MlflowClient) -> None:
    catalog = DataCatalog.from_config(catalog_config(tmp_path))
    mlflow.start_run()
    run_id = run_tracked(WRITE + READ, catalog, tmp_path)
    assert run_id is not None
    run = store.get_run(run_id)

    history = store.get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(1, 0.9), (2, 0.5)]
    report = json.loads((tmp_path / "scorecard.json").read_text())
    assert {k: v for k, v in run.data.metrics.items() if k in flat_metrics(report)} == (
        pytest.approx(flat_metrics(report))
    )
    assert artifact_paths(store, run_id) == {
        "metrics/fit_log.json",
        "data/cohort.csv",
        "plots/loss.png",  # a dataset-factory entry
    }  # scorecard and scratch: not wrapped, no file
    (lineage,) = run.inputs.dataset_inputs
    assert lineage.dataset.name == "cohort"
    assert (
        lineage.dataset.digest == run.data.tags["data_fingerprint"] == mlflow_digest(make_cohort())
    )
    assert {tag.key: tag.value for tag in lineage.tags} == {"mlflow.data.context": "cohort"}


def test_a_resumed_training_is_tagged_with_the_epochs_it_did_not_run_again(
    tmp_path: Path, store: MlflowClient
) -> None:
    """A history that starts at epoch 3: the checkpoint of epochs 1-2 was resumed."""

    def resumed_fit(cohort: pd.DataFrame) -> dict[str, list[float]]:
        return {"loss": [0.5, 0.4], "epoch": [3, 4]}

    catalog = DataCatalog.from_config(catalog_config(tmp_path))
    mlflow.start_run()
    run_id = run_tracked(
        WRITE + Pipeline([Node(resumed_fit, "cohort", "fit_log", name="resumed_fit")]),
        catalog,
        tmp_path,
    )
    assert run_id is not None
    assert store.get_run(run_id).data.tags["resumed_after_epoch"] == "2"
    steps = [m.step for m in store.get_metric_history(run_id, "loss")]
    assert steps == [3, 4]
    mlflow.start_run()
    fresh = run_tracked(WRITE + READ, DataCatalog.from_config(catalog_config(tmp_path)), tmp_path)
    assert fresh is not None
    assert "resumed_after_epoch" not in store.get_run(fresh).data.tags


def test_a_run_that_reads_an_input_logs_its_lineage_once_and_a_copy(
    tmp_path: Path, store: MlflowClient
) -> None:
    """Saved in one run, loaded in the next: the same digest, and the file in both."""
    config = catalog_config(tmp_path)
    mlflow.start_run()
    writer = run_tracked(WRITE, DataCatalog.from_config(config), tmp_path)
    mlflow.start_run()
    reader = run_tracked(READ, DataCatalog.from_config(config), tmp_path)
    assert writer is not None and reader is not None
    digests = [store.get_run(run).data.tags["data_fingerprint"] for run in (writer, reader)]
    assert digests[0] == digests[1] == mlflow_digest(make_cohort())
    (lineage,) = store.get_run(reader).inputs.dataset_inputs
    assert str(tmp_path / "cohort.csv") in lineage.dataset.source
    assert "data/cohort.csv" in artifact_paths(store, reader)


def test_a_declaration_the_hooks_do_not_know_is_reported(
    tmp_path: Path, store: MlflowClient, caplog: pytest.LogCaptureFixture
) -> None:
    catalog = DataCatalog.from_config(catalog_config(tmp_path, metrics="accuracy"))
    mlflow.start_run()
    with caplog.at_level(logging.WARNING, logger="chest_xray.tracking"):
        run_tracked(WRITE, catalog, tmp_path)
    assert any("'cohort'" in r.getMessage() and "metadata.mlflow" in r.getMessage()
               for r in caplog.records)  # fmt: skip


def test_without_an_active_run_nothing_is_logged_and_no_run_starts(
    tmp_path: Path, store: MlflowClient
) -> None:
    """Tracking disabled: even a dataset-factory artifact entry (resolved only when the
    runner needs it) must not log, which would start a run of its own."""
    catalog = DataCatalog.from_config(catalog_config(tmp_path))
    assert run_tracked(WRITE + READ, catalog, tmp_path) is None
    assert (tmp_path / "loss.png").exists()
    assert mlflow.active_run() is None
    assert store.search_runs([e.experiment_id for e in store.search_experiments()]) == []


# ------------------------------------------------------------------- guard tests


def project_catalog() -> DataCatalog:
    loader = OmegaConfigLoader(
        str(REPO / "conf"), **{**settings.CONFIG_LOADER_ARGS, "default_run_env": "demo"}
    )
    return DataCatalog.from_config(loader["catalog"])


def pipeline_datasets() -> set[str]:
    pipelines = [data_processing(), training(), evaluation(), cross_validation()]
    return {name for pipeline in pipelines for name in pipeline.datasets()}


def test_every_report_and_model_is_tracked_or_listed_as_not() -> None:
    catalog = project_catalog()
    missing = {}
    for name in sorted(pipeline_datasets()):
        dataset = catalog.get(name)
        metadata = getattr(dataset, "metadata", None) or {}
        layer = metadata.get("kedro-viz", {}).get("layer")
        if layer not in {"reporting", "models"}:
            continue
        if is_tracked(dataset) == (name in NOT_TRACKED):
            missing[name] = layer
    assert not missing, (
        f"{missing}: declare the tracking in conf/base/catalog.yml (MlflowArtifactDataset or "
        "metadata.mlflow) or list the dataset in NOT_TRACKED with a reason"
    )


def test_the_project_catalog_declares_what_today_s_runs_log() -> None:
    catalog = project_catalog()
    servable = declaration_of(catalog.get("servable_model"))
    assert (servable.model, servable.name) == ("servable", "model")
    assert (servable.registered_model, servable.champion_alias) == ("chest-xray", "champion")
    assert declaration_of(catalog.get("model")) is None  # the package holds the network
    assert declaration_of(catalog.get("training_history")).metrics == "history"
    assert declaration_of(catalog.get("test_metrics")).metrics == "evaluation_report"
    assert declaration_of(catalog.get("split_manifest")).input == "split"
    for name in ["training_history", "test_metrics", "split_manifest", "roc_curve_plot"]:
        assert is_artifact_dataset(catalog.get(name)), name
    # cross-validation: the folds' figures in a child run each, the summary in the parent
    for name in ["fold_2.training_history", "fold_2.test_metrics"]:
        assert declaration_of(catalog.get(name)).run == "namespace", name
    assert declaration_of(catalog.get("cv_summary")).metrics == "cross_validation"


def test_only_metrics_go_to_a_namespace_s_child_run() -> None:
    assert Declaration(metrics="history", run="namespace").run == "namespace"
    for wrong in ({"model": "keras"}, {"input": "split"}):
        with pytest.raises(ValidationError, match="run: namespace takes metrics only"):
            Declaration(run="namespace", **wrong)


def test_a_metric_prefix_names_a_second_report_of_one_kind() -> None:
    report = evaluation_report(
        [0, 1, 1, 0], [0.2, 0.9, 0.6, 0.4], [0, 1], [0.3, 0.7], EvaluationParams()
    )
    plain = declared_metrics(Declaration(metrics="evaluation_report"), report)
    prefixed = declared_metrics(
        Declaration(metrics="evaluation_report", metric_prefix="ensemble_"), report
    )
    assert [m.key for m in prefixed] == [f"ensemble_{m.key}" for m in plain]
    assert [m.value for m in prefixed] == [m.value for m in plain]
    assert declared_metrics(Declaration(metrics="evaluation_report"), {"skipped": "no"}) == []
    with pytest.raises(ValidationError, match="metric_prefix needs metrics"):
        Declaration(metric_prefix="ensemble_")


def test_the_tracking_package_names_no_catalog_dataset() -> None:
    names = set(project_catalog().keys()) | pipeline_datasets()
    names |= {"{name}_plot", "_plot"}
    package = REPO / "src/chest_xray/tracking"
    found = {
        (path.name, node.value)
        for path in sorted(package.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and node.value in names
    }
    assert not found, (
        f"dataset names in the tracking package (declare them in the catalog): {found}"
    )


def test_a_history_becomes_metrics_with_the_epoch_as_step() -> None:
    metrics = history_metrics({"loss": [0.9, 0.5], "val_auc": [0.6, 0.7], "epoch": [1, 2]})
    assert sorted((m.key, m.step, m.value) for m in metrics) == [
        ("loss", 1, 0.9),
        ("loss", 2, 0.5),
        ("val_auc", 1, 0.6),
        ("val_auc", 2, 0.7),
    ]
    assert history_metrics({"loss": [], "epoch": []}) == []
