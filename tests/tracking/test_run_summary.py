"""The run summary: its text from hand-made reports, and what real tracked runs print."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset, Version
from kedro.pipeline import Node, Pipeline
from kedro_datasets.json import JSONDataset
from kedro_datasets.pandas import CSVDataset

from chest_xray.evaluation.params import EvaluationParams
from chest_xray.summary.hook import (
    RunSummaryHooks,
    complete_facts,
    dataset_location,
    record_saved,
)
from chest_xray.summary.run_summary import (
    MlflowRunInfo,
    RunFacts,
    dropped_reason,
    summary_text,
    table_counts,
)
from tests.tracking.conftest import Tracked


def _point(threshold: float, accuracy: float, sensitivity: float, specificity: float) -> dict:
    return {
        "threshold": threshold,
        "accuracy": accuracy,
        "sensitivity": sensitivity,
        "specificity": specificity,
    }


def _ci(low: float, high: float) -> dict[str, float]:
    return {"low": low, "high": high}


def binary_report(*, tuned: bool = True) -> dict[str, Any]:
    return {
        "task": "binary",
        "positive_class": "PNEUMONIA",
        "test": {
            "n": 624,
            "auc": 0.9512,
            "at_fixed_threshold": _point(0.5, 0.81, 0.99, 0.51),
            "at_validation_threshold": (
                {**_point(0.8123, 0.9, 0.93, 0.85), "strategy": "youden"} if tuned else None
            ),
            "confidence_intervals": {
                "level": 0.95,
                "metrics": {
                    "accuracy": _ci(0.78, 0.84),
                    "sensitivity": _ci(0.98, 1.0),
                    "specificity": _ci(0.45, 0.57),
                    "auc": _ci(0.935, 0.966),
                },
                "at_validation_threshold": {
                    "accuracy": _ci(0.876, 0.923),
                    "sensitivity": _ci(0.904, 0.955),
                    "specificity": _ci(0.80, 0.89),
                },
            },
        },
        "calibration": {
            "temperature": 1.734,
            "test": {"ece": 0.1234},
            "test_calibrated": {"ece": 0.0456},
        },
    }


MLFLOW = MlflowRunInfo("abc123", "7", "sqlite:///mlflow.db", "127.0.0.1", "5001")


def evaluated_facts(**changes: Any) -> RunFacts:
    facts = RunFacts(
        env="demo",
        made={
            "test_metrics": "data/08_reporting/test_metrics.json",
            "roc_curve_plot": "data/08_reporting/roc_curve.png",
            "confusion_matrix_plot": "data/08_reporting/confusion_matrix.png",
            "dropped_items": "data/08_reporting/dropped_items.csv",
        },
        reports={"test_metrics": binary_report()},
        counts={"dropped_items": {"unreadable image": 2, "exact duplicate": 1}},
        mlflow=MLFLOW,
    )
    for key, value in changes.items():
        setattr(facts, key, value)
    return facts


def _line(text: str, start: str) -> str:
    found = [line for line in text.splitlines() if line.strip().startswith(start)]
    assert len(found) == 1, (start, text)
    return found[0]


def test_an_evaluated_run_shows_the_packaged_threshold_metrics_with_intervals() -> None:
    text = summary_text(evaluated_facts())

    assert "624 images" in text
    assert "threshold 0.812 (youden on validation" in text
    assert _line(text, "accuracy").split() == ["accuracy", "0.900", "0.876", "-", "0.923"]
    assert _line(text, "sensitivity").split()[1:] == ["0.930", "0.904", "-", "0.955"]
    assert _line(text, "specificity").split()[1:] == ["0.850", "0.800", "-", "0.890"]
    assert _line(text, "AUC").split()[1:] == ["0.951", "0.935", "-", "0.966"]
    assert "95% interval" in text
    assert "calibration (test ECE): 0.123" in text and "0.046 after temperature 1.73" in text


def test_the_packaged_models_own_decision_rule_is_quoted() -> None:
    facts = evaluated_facts()
    rule = "threshold 0.7903, youden on validation, in calibrated units"
    record_saved(facts, "servable_model", SimpleNamespace(settings=SimpleNamespace(decision=rule)))
    assert f"  packaged model: {rule}" in summary_text(facts).splitlines()
    assert "packaged model:" not in summary_text(evaluated_facts())


def test_the_fixed_threshold_is_shown_when_the_package_applies_it() -> None:
    for facts in (
        evaluated_facts(model_threshold="fixed"),
        evaluated_facts(reports={"test_metrics": binary_report(tuned=False)}),
    ):
        text = summary_text(facts)
        assert "threshold 0.500 (fixed" in text
        assert _line(text, "accuracy").split()[1:] == ["0.810", "0.780", "-", "0.840"]


def test_drops_plots_report_mlflow_and_viz_are_named() -> None:
    text = summary_text(evaluated_facts())

    assert "Dropped or skipped: 3 (1 exact duplicate, 2 unreadable image)" in text
    assert "listed in data/08_reporting/dropped_items.csv" in text
    assert "Plots in data/08_reporting/: roc_curve.png, confusion_matrix.png" in text
    assert "Report: data/08_reporting/test_metrics.json" in text
    assert "MLflow run abc123" in text
    assert "kedro mlflow ui --env demo" in text
    assert "http://127.0.0.1:5001/#/experiments/7/runs/abc123" in text
    assert "kedro viz run --env demo" in text


def test_a_tracking_server_is_linked_directly_and_no_tracking_is_said() -> None:
    server = MlflowRunInfo("abc123", "7", "https://mlflow.internal:5000/")
    text = summary_text(evaluated_facts(mlflow=server))
    assert "https://mlflow.internal:5000/#/experiments/7/runs/abc123" in text
    assert "kedro mlflow ui" not in text
    assert "not tracked" in summary_text(evaluated_facts(mlflow=None))


def test_drops_read_from_an_earlier_run_say_so() -> None:
    facts = evaluated_facts(
        made={"test_metrics": "t.json"},
        counts_from_earlier={"dropped_items": "data/08_reporting/dropped_items.csv"},
    )
    text = summary_text(facts)
    assert "Dropped or skipped (by the last data_processing run): 3" in text
    assert "listed in data/08_reporting/dropped_items.csv" in text


def test_a_run_that_did_not_evaluate_says_what_it_made() -> None:
    facts = RunFacts(
        env="local",
        pipelines=["data_processing", "training"],
        made={
            "processed_images": "data/03_primary/images",
            "preprocessing_log": "data/03_primary/preprocessing_log.csv",
            "split_manifest": "data/03_primary/split_manifest.csv",
            "model": "data/06_models/model.h5/V/model.h5",
            "training_history": "data/08_reporting/training_history.json",
            "training_curves_plot": "data/08_reporting/training_curves.png",
        },
        history={"loss": [0.9, 0.5, 0.4], "val_auc": [0.7, 0.93, 0.9]},
        counts={
            "preprocessing_log": {"ok": 97, "skipped": 3},
            "split_manifest": {"test": 20, "train": 60, "validation": 17},
        },
    )
    text = summary_text(facts)

    assert "No evaluation in this run" in text
    assert "images: 100 preprocessed (97 ok, 3 skipped) in data/03_primary/images" in text
    assert "split: train 60, validation 17, test 20 in data/03_primary/split_manifest.csv" in text
    assert "model: data/06_models/model.h5/V/model.h5 (3 epochs, best validation AUC 0.930)" in (
        text
    )
    assert "also: training_history" in text
    assert "Plots in data/08_reporting/: training_curves.png" in text
    assert "Test split" not in text and "Report:" not in text


def test_multiclass_cross_validation_and_skipped_reports() -> None:
    multiclass = {
        "task": "multiclass",
        "classes": ["NORMAL", "BACTERIA", "VIRUS"],
        "test": {
            "n": 90,
            "accuracy": 0.7,
            "macro_f1": 0.65,
            "auc": 0.85,
            "per_class": {"NORMAL": {"sensitivity": 0.9}, "BACTERIA": {"sensitivity": 0.6}},
            "confidence_intervals": {"level": 0.9, "metrics": {"macro_auc": _ci(0.8, 0.9)}},
        },
    }
    summary = {
        "folds": 5,
        "statistics": {"test_auc": {"mean": 0.91, "sd": 0.02, "min": 0.88, "max": 0.94}},
        "pooled_out_of_fold": {"n": 500, "auc": 0.905},
    }
    reports = {
        "test_metrics": multiclass,
        "cv_summary": summary,
        "cv_ensemble_test_metrics": {"task": "binary", "skipped": "the test split is empty"},
    }
    text = summary_text(RunFacts(reports=reports))

    assert "classes NORMAL/BACTERIA/VIRUS" in text
    assert _line(text, "macro AUC").split()[2:] == ["0.850", "0.800", "-", "0.900"]
    assert "90% interval" in text
    assert "sensitivity per class: NORMAL 0.900, BACTERIA 0.600" in text
    assert "Cross-validation over 5 folds" in text
    assert _line(text, "AUC").split()[1:] == ["0.910", "0.020", "0.880", "-", "0.940"]
    assert "pooled out-of-fold AUC 0.905 (n=500)" in text
    assert "Fold ensemble on the test split: not scored (the test split is empty)" in text


def test_a_long_list_of_plots_is_wrapped() -> None:
    made = {f"figure_number_{k}_plot": f"data/08_reporting/figure_number_{k}.png" for k in range(9)}
    text = summary_text(RunFacts(made=made))
    plots = text[text.index("Plots in") :].split("\n\n")[0].splitlines()
    assert len(plots) > 1 and all(len(line) <= 100 for line in plots)
    assert all(f"figure_number_{k}.png" in text for k in range(9))


def test_tables_are_kept_as_counts_only() -> None:
    dropped = pd.DataFrame(
        {
            "reason": [
                "unreadable image: cannot identify image file",
                "exact duplicate, dropped from test",
                "image file has no metadata row (unlabelled)",
            ]
        }
    )
    assert table_counts("dropped_items", dropped) == {
        "unreadable image": 1,
        "exact duplicate": 1,
        "image file has no metadata row (unlabelled)": 1,
    }
    assert dropped_reason("") == "unknown"
    assert table_counts("image_index", dropped) is None
    facts = RunFacts()
    record_saved(facts, "dropped_items", dropped)
    record_saved(facts, "processed_images", {"a": object()})
    record_saved(facts, "test_metrics", {"test": {}})
    assert facts.counts == {"dropped_items": table_counts("dropped_items", dropped)}
    assert list(facts.made) == ["dropped_items", "processed_images", "test_metrics"]
    assert facts.reports == {"test_metrics": {"test": {}}}


def test_a_broken_report_costs_the_summary_not_the_run(caplog: pytest.LogCaptureFixture) -> None:
    out = io.StringIO()
    hooks = RunSummaryHooks(out=out)
    hooks.before_pipeline_run({"env": "demo", "pipeline_names": None})
    hooks.after_dataset_saved("test_metrics", {"test": "not a section"})
    hooks.after_pipeline_run({}, pipeline=_NoPipeline(), catalog=_EmptyCatalog())  # type: ignore[arg-type]
    assert out.getvalue() == ""
    assert "No run summary" in caplog.text


class _NoPipeline:
    def all_outputs(self) -> set[str]:
        return set()


class _EmptyCatalog:
    def __contains__(self, name: str) -> bool:
        return False

    def get(self, name: str) -> None:
        return None

    def exists(self, name: str) -> bool:
        return False


# ---------------------------------------------------------------- real tracked runs


@pytest.mark.slow
def test_real_runs_end_with_their_summary(tracked: Tracked) -> None:
    processing = tracked.printed["data_processing"]
    assert "Run summary (kedro run --env=demo, pipelines: data_processing)" in processing
    assert "No evaluation in this run" in processing
    assert "preprocessed" in processing and "split: train" in processing
    assert f"MLflow run {tracked.data_processing.info.run_id}" in processing
    dropped = pd.read_csv(tracked.project / "data/08_reporting/dropped_items.csv")
    assert f"Dropped or skipped: {len(dropped)} (" in processing

    evaluated = tracked.printed["training_3"]
    report = json.loads((tracked.project / "data/08_reporting/test_metrics.json").read_text())
    test = report["test"]
    tuned = test["at_validation_threshold"] or test["at_fixed_threshold"]
    assert f"{test['n']} images" in evaluated
    assert f"threshold {tuned['threshold']:.3f}" in evaluated
    assert _line(evaluated, "accuracy").split()[1] == f"{tuned['accuracy']:.3f}"
    assert "calibration (test ECE)" in evaluated
    assert "packaged model: threshold " in evaluated
    # Evaluated without data_processing: the drops are the last data_processing run's.
    assert f"Dropped or skipped (by the last data_processing run): {len(dropped)}" in evaluated
    assert "Plots in data/08_reporting/:" in evaluated
    for plot in ("roc_curve.png", "confusion_matrix.png", "reliability_diagram.png"):
        assert plot in evaluated
    assert "Report: data/08_reporting/test_metrics.json" in evaluated
    run = tracked.trainings[3].info
    assert f"/#/experiments/{run.experiment_id}/runs/{run.run_id}" in evaluated
    assert "kedro mlflow ui --env demo" in evaluated
    assert "kedro viz run --env demo" in evaluated


def test_facts_are_completed_from_the_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Locations relative to the project, this run's version of a versioned dataset, the
    packaged threshold rule, the last run's drops; the reports of a run whose dataset
    hooks ran elsewhere (ParallelRunner) read back from the catalog."""
    monkeypatch.chdir(tmp_path)
    report_path = tmp_path / "data/08_reporting/test_metrics.json"
    report_path.parent.mkdir(parents=True)
    report_path.write_text(json.dumps(binary_report()))
    pd.DataFrame({"reason": ["unreadable image: x", "unreadable image: y"]}).to_csv(
        tmp_path / "data/08_reporting/dropped_items.csv", index=False
    )
    catalog = DataCatalog(
        {
            "test_metrics": JSONDataset(filepath=str(report_path)),
            "dropped_items": CSVDataset(filepath="data/08_reporting/dropped_items.csv"),
            "model": JSONDataset(
                filepath=str(tmp_path / "data/06_models/model.json"), version=Version(None, "V1")
            ),
            "params:evaluation": MemoryDataset(EvaluationParams(model_threshold="fixed")),
        }
    )
    pipeline = Pipeline([Node(lambda: ({}, {}), None, ["model", "test_metrics"], name="n")])

    facts = RunFacts()
    complete_facts(facts, pipeline, catalog)

    assert facts.made == {
        "model": "data/06_models/model.json/V1/model.json",
        "test_metrics": "data/08_reporting/test_metrics.json",
    }
    assert facts.reports == {"test_metrics": binary_report()}
    assert facts.model_threshold == "fixed"
    assert facts.counts == {"dropped_items": {"unreadable image": 2}}
    assert facts.counts_from_earlier == {"dropped_items": "data/08_reporting/dropped_items.csv"}
    assert dataset_location(catalog, "params:evaluation") is None


def test_an_inference_run_counts_the_images_flagged_out_of_distribution() -> None:
    predictions = pd.DataFrame(
        {"file": ["a.png", "b.png", "c.png"], "ood_flag": [False, True, True]}
    )
    counts = table_counts("inference_predictions", predictions)
    assert counts == {"rows": 3, "ood_flagged": 2}
    facts = RunFacts(
        pipelines=["inference"],
        made={"inference_predictions": "data/07_model_output/inference_predictions.csv"},
        counts={"inference_predictions": counts},
    )
    assert (
        "predictions: 3 row(s), 2 flagged out of distribution in "
        "data/07_model_output/inference_predictions.csv"
    ) in summary_text(facts)
    older = table_counts("inference_predictions", predictions.drop(columns="ood_flag"))
    assert older == {"rows": 3}
