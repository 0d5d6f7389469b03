"""A real `kedro run` of the multiclass task (NORMAL / BACTERIA / VIRUS) on the demo data:
labels from the categories, a softmax model, its report, figures, package and inference."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from chest_xray.data.metadata import REASON_NO_CLASS
from chest_xray.params import RuntimeParameterError
from chest_xray.tools.demo_data import DemoDatasetFacts
from tests.conftest import RunKedro

pytestmark = pytest.mark.slow

CLASSES = ["NORMAL", "BACTERIA", "VIRUS"]
IMAGES = Path("Coronahack-Chest-XRay-Dataset") / "Coronahack-Chest-XRay-Dataset"


def test_multiclass_run_trains_a_softmax_model_and_reports_every_class(
    run_kedro: RunKedro, kedro_project: Path, demo_dataset: DemoDatasetFacts
) -> None:
    params = {
        "raw_root": str(demo_dataset.root),
        "preprocessing.workers": 1,
        "training.task": "multiclass",
        "training.epochs": 2,
        "training.class_weight": "balanced",
        "inference_root": str(demo_dataset.root / IMAGES / "test"),
        "inference.gradcam": 2,
    }
    run_kedro(runtime_params=params)
    data = kedro_project / "data"

    manifest = pd.read_csv(data / "03_primary/split_manifest.csv")
    assert set(manifest["label"]) == set(CLASSES)
    for split in ("train", "validation"):  # stratified on the class: every class on each side
        assert set(manifest.loc[manifest["split"] == split, "label"]) == set(CLASSES)
    dropped = pd.read_csv(data / "08_reporting/dropped_items.csv")
    no_class = dropped[dropped["reason"].str.startswith(REASON_NO_CLASS)]
    assert len(no_class) == 2  # the demo data's two Stress-Smoking (ARDS) rows
    assert no_class["reason"].str.contains("Stress-Smoking").all()

    predictions = pd.read_csv(data / "07_model_output/test_predictions.csv")
    columns = [f"probability_{name}" for name in CLASSES]
    assert list(predictions.columns) == ["image_id", "label", "y_true", *columns]
    assert predictions[columns].sum(axis=1).to_numpy() == pytest.approx(1.0, abs=1e-5)

    report = json.loads((data / "08_reporting/test_metrics.json").read_text())
    assert report["task"] == "multiclass"
    assert report["classes"] == CLASSES
    test = report["test"]
    assert test["n"] == len(predictions)
    matrix = test["confusion_matrix"]
    assert len(matrix) == 3 and all(len(row) == 3 for row in matrix)
    assert sum(map(sum, matrix)) == test["n"]
    assert set(test["per_class"]) == set(CLASSES)
    intervals = test["confidence_intervals"]
    assert intervals["resamples"] == 1000
    for name in ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc"):
        interval = intervals["metrics"][name]
        assert interval["low"] <= interval["high"], name
    for plot in ("confusion_matrix", "roc_curve", "prediction_gallery", "gradcam_gallery"):
        assert (data / f"08_reporting/{plot}.png").stat().st_size > 5_000, plot

    # The packaged model predicts a class per file, with a probability for each class.
    run_kedro(runtime_params=params, pipeline_names=["inference"])
    new = pd.read_csv(data / "07_model_output/inference_predictions.csv")
    # Images the out-of-distribution guard flags stay unlabelled (the default policy).
    labelled = new[~new["ood_flag"].astype(bool)]
    assert len(labelled) > len(new) / 2
    assert set(labelled["label"]) <= set(CLASSES)
    assert new.loc[new["ood_flag"].astype(bool), "label"].isna().all()
    assert {f"probability_{name}" for name in CLASSES} <= set(new.columns)
    assert new["threshold"].isna().all()
    assert (new["threshold_source"] == "argmax").all()
    assert len(list((data / "08_reporting/inference_gradcam").rglob("*.png"))) >= 2


def test_binary_only_settings_are_refused_in_a_multiclass_run_before_it_starts(
    run_kedro: RunKedro, demo_dataset: DemoDatasetFacts
) -> None:
    params = {
        "raw_root": str(demo_dataset.root),
        "training.task": "multiclass",
        "evaluation.target_prevalence": 0.6,
    }
    with pytest.raises(RuntimeParameterError, match=r"evaluation\.target_prevalence=0\.6"):
        run_kedro(runtime_params=params, pipeline_names=["data_processing"])
