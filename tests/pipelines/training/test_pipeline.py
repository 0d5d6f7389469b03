"""Real `kedro run`s of training, then evaluation, on generated demo data: the model learns,
the evaluation pipeline scores the saved model, and partial reruns work."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import pandas as pd
import pytest

from chest_xray.pipelines.training import create_pipeline
from chest_xray.tools.demo_data import DemoDatasetFacts, write_demo_dataset
from tests.conftest import RunKedro

pytestmark = pytest.mark.slow

PLOTS = [
    "training_curves",
    "confusion_matrix",
    "roc_curve",
    "prediction_gallery",
    "gradcam_gallery",
]


@pytest.fixture(scope="module")
def learnable_dataset(tmp_path_factory: pytest.TempPathFactory) -> DemoDatasetFacts:
    """Enough demo images for a small CNN to learn in a few CPU epochs."""
    return write_demo_dataset(tmp_path_factory.mktemp("raw") / "coronahack", n_train=400, seed=1)


def test_training_pipeline_trains_and_draws_curves_only() -> None:
    pipeline = create_pipeline()
    assert {node.name: node.tags for node in pipeline.nodes} == {
        "train_model": {"training"},
        "plot_training_curves": {"training"},
    }
    assert pipeline.all_outputs() == {"model", "training_history", "training_curves_plot"}


def test_training_learns_and_evaluation_scores_the_saved_model(
    run_kedro: RunKedro, kedro_project: Path, learnable_dataset: DemoDatasetFacts
) -> None:
    params = {
        "raw_root": str(learnable_dataset.root),
        "preprocessing.workers": 1,
        "training.mixed_precision": "bfloat16",  # trained in 16 bits, saved in float32
    }
    run_kedro(pipeline_names=["data_processing"], runtime_params=params)
    run_kedro(pipeline_names=["training"], runtime_params=params)
    data = kedro_project / "data"
    # Training alone trains: no prediction, metric or evaluation figure yet.
    assert (data / "08_reporting/training_curves.png").exists()
    assert not (data / "08_reporting/test_metrics.json").exists()
    assert not (data / "07_model_output/test_predictions.csv").exists()
    run_kedro(pipeline_names=["evaluation"], runtime_params=params)

    history = json.loads((data / "08_reporting/training_history.json").read_text())
    manifest = pd.read_csv(data / "03_primary/split_manifest.csv")
    validation = manifest[manifest["split"] == "validation"]
    majority = validation["label"].value_counts(normalize=True).max()
    assert len(history["val_accuracy"]) >= 3
    assert max(history["val_accuracy"]) > majority + 0.1, (history, majority)

    metrics = json.loads((data / "08_reporting/test_metrics.json").read_text())
    test = metrics["test"]
    assert test["n"] == int((manifest["split"] == "test").sum())
    assert test["auc"] > 0.8
    fixed = test["at_fixed_threshold"]
    assert fixed["threshold"] == 0.5
    assert set(fixed["confusion_matrix"]) == {"tn", "fp", "fn", "tp"}
    assert sum(fixed["confusion_matrix"].values()) == test["n"]
    # Calibration, measured in every evaluation: fitted on validation, drawn for test.
    calibration = metrics["calibration"]
    assert calibration["test"]["n"] == test["n"] and 0.0 <= calibration["test"]["ece"] <= 1.0
    assert calibration["temperature"] > 0.0
    assert (data / "08_reporting/reliability_diagram.png").stat().st_size > 0

    predictions = pd.read_csv(data / "07_model_output/test_predictions.csv")
    assert list(predictions.columns) == ["image_id", "label", "y_true", "probability"]
    assert predictions["probability"].between(0, 1).all()
    for plot in PLOTS:
        assert (data / f"08_reporting/{plot}.png").stat().st_size > 5_000, plot
    models = sorted((data / "06_models/model.keras").iterdir())
    assert len(models) == 1  # one version
    saved = keras.saving.load_model(models[0] / "model.keras", compile=False)
    assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}

    # The old way to re-evaluate, --from-nodes=predict on __default__, still works: no
    # training node runs, no new model version.
    (data / "08_reporting/test_metrics.json").unlink()
    run_kedro(runtime_params=params, from_nodes=["predict"])
    assert sorted((data / "06_models/model.keras").iterdir()) == models
    again = json.loads((data / "08_reporting/test_metrics.json").read_text())
    assert again["test"]["auc"] == pytest.approx(test["auc"], abs=1e-6)
    assert json.loads((data / "08_reporting/training_history.json").read_text()) == history

    # --only-missing-outputs: everything exists, so nothing is trained again.
    run_kedro(runtime_params=params, only_missing_outputs=True)
    assert sorted((data / "06_models/model.keras").iterdir()) == models
