"""What tracked `kedro run`s hold, read back through MlflowClient (RunContentHooks + catalog)."""

from __future__ import annotations

import base64
import json
import os
import socket

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest

from chest_xray.evaluation.calibration import apply_temperature
from chest_xray.evaluation.metrics import flat_metrics
from chest_xray.inference.packaging import load_classifier
from chest_xray.modeling.inputs import decode_grey_png
from chest_xray.modeling.precision import resolve_precision
from tests.tracking.conftest import TRAINING, Tracked
from tests.tracking.support import MANIFEST, artifact_paths, mlflow_digest, read_artifact

EPOCH_METRICS = ["loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc"]
PLOTS = [
    "training_curves",
    "confusion_matrix",
    "roc_curve",
    "reliability_diagram",
    "prediction_gallery",
    "gradcam_gallery",
]

pytestmark = pytest.mark.slow


def manifest_digest(tracked: Tracked) -> str:
    """MLflow's digest of the manifest file, read as the catalog reads it."""
    frame = pd.read_csv(tracked.project / MANIFEST, keep_default_na=False)
    return mlflow_digest(frame)


def test_each_run_is_named_finished_and_tagged(tracked: Tracked) -> None:
    for names, run in [
        (["data_processing"], tracked.data_processing),
        *((TRAINING, run) for run in tracked.trainings.values()),
    ]:
        info, tags = run.info, run.data.tags
        assert info.status == "FINISHED"
        assert info.run_name == f"{'+'.join(names)}-{info.run_id[:8]}"
        # kedro-mlflow's tags from Kedro's run parameters (ours no longer repeat them)
        assert tags["pipeline_names"] == str(names)
        assert tags["env"] == "demo"
        assert "kedro_env" not in tags and "pipeline" not in tags
        assert tags["host"] == socket.gethostname()
        assert tags["pid"] == str(os.getpid())
        # The temporary copy is not a git repository.
        assert tags["git_commit"] == tags["git_dirty"] == "unknown"
    for run in tracked.trainings.values():
        assert run.data.tags["keras_backend"] == keras.backend.backend()
        assert run.data.tags["device"] in {"CPU", "GPU", "TPU"}
    assert "device" not in tracked.data_processing.data.tags  # no model, no device
    assert mlflow.active_run() is None  # no run left open in-process


def test_every_run_has_the_same_data_fingerprint_for_the_same_manifest(tracked: Tracked) -> None:
    """The tag is MLflow's own digest of the manifest, whether the run wrote or read it."""
    expected = manifest_digest(tracked)
    for run in [tracked.data_processing, *tracked.trainings.values()]:
        assert run.data.tags["data_fingerprint"] == expected


def test_the_manifest_is_logged_as_dataset_lineage_once_per_run(tracked: Tracked) -> None:
    manifest = (tracked.project / MANIFEST).resolve()
    for run in [tracked.data_processing, *tracked.trainings.values()]:
        inputs = tracked.client.get_run(run.info.run_id).inputs.dataset_inputs
        (lineage,) = inputs  # loaded by train_model and predict: logged once
        assert lineage.dataset.name == "split_manifest"
        assert lineage.dataset.digest == run.data.tags["data_fingerprint"]
        assert str(manifest) in lineage.dataset.source
        assert {tag.key: tag.value for tag in lineage.tags}["mlflow.data.context"] == "split"
        columns = {c["name"] for c in json.loads(lineage.dataset.schema)["mlflow_colspec"]}
        assert {"image_id", "split", "label"} <= columns


def test_typed_parameters_are_logged_field_by_field(tracked: Tracked) -> None:
    for epochs, run in tracked.trainings.items():
        params = run.data.params
        assert params["training.epochs"] == str(epochs)
        assert params["training.model.dropout"] == "0.5"
        assert params["training.model.dense_units"] == "64"  # conf/demo
        assert params["training.model.conv_filters"] == "[32, 64, 128, 128]"
        assert params["training.optimizer.learning_rate"] == "0.001"
        assert params["training.augmentation.rotation_degrees"] == "10.0"
        assert params["evaluation.threshold"] == "0.5"
        assert params["evaluation.gallery.n_images"] == "12"
        # What training.mixed_precision: auto resolved to on this machine, as the trainer did.
        assert params["training.mixed_precision"] == "auto"
        assert params["training.precision_policy"] == resolve_precision("auto").policy
    processing = tracked.data_processing.data.params
    assert "training.precision_policy" not in processing  # only a training node resolves it
    assert processing["preprocessing.image_size"] == "[64, 64]"
    assert processing["split.seed"] == "2"
    assert processing["metadata.label_map.Pnemonia"] == "PNEUMONIA"


def test_every_epoch_is_a_metric_step(tracked: Tracked) -> None:
    for epochs, run in tracked.trainings.items():
        for key in EPOCH_METRICS:
            history = tracked.client.get_metric_history(run.info.run_id, key)
            assert [point.step for point in history] == list(range(1, epochs + 1)), key
    # The last run's curve is the training_history it saved.
    saved = json.loads((tracked.project / "data/08_reporting/training_history.json").read_text())
    last = tracked.trainings[3].info.run_id
    for key in EPOCH_METRICS:
        values = [p.value for p in tracked.client.get_metric_history(last, key)]
        assert values == pytest.approx(saved[key]), key


def test_test_metrics_are_the_evaluation_report(tracked: Tracked) -> None:
    report = json.loads((tracked.project / "data/08_reporting/test_metrics.json").read_text())
    expected = flat_metrics(report)
    logged = tracked.trainings[3].data.metrics
    for key in ["accuracy", "sensitivity", "specificity", "precision", "f1", "auc", "threshold"]:
        assert logged[f"test_{key}"] == pytest.approx(expected[f"test_{key}"]), key
    assert {key: logged[key] for key in expected} == pytest.approx(expected)
    assert any(key.startswith("test_tuned_") for key in logged)
    # The final model on validation does not land on Keras' per-epoch val_* curves.
    assert "validation_accuracy" in logged
    history = tracked.client.get_metric_history(tracked.trainings[3].info.run_id, "val_accuracy")
    assert len(history) == 3


def test_plots_reports_and_the_manifest_are_artifacts(tracked: Tracked, tmp_path) -> None:
    client, run_id = tracked.client, tracked.trainings[3].info.run_id
    assert artifact_paths(client, run_id) == {
        *(f"plots/{name}.png" for name in PLOTS),
        "metrics/test_metrics.json",
        "metrics/training_history.json",
        "data/split_manifest.csv",  # read, not written, by this run: a copy all the same
    }
    reports = tracked.project / "data/08_reporting"
    for name in ["test_metrics", "training_history"]:
        logged = read_artifact(client, run_id, f"metrics/{name}.json", tmp_path)
        assert json.loads(logged) == json.loads((reports / f"{name}.json").read_text())
    manifest = read_artifact(client, run_id, "data/split_manifest.csv", tmp_path)
    assert manifest == (tracked.project / MANIFEST).read_bytes()
    png = read_artifact(client, run_id, "plots/roc_curve.png", tmp_path)
    assert png.startswith(b"\x89PNG") and len(png) > 5_000

    processing = tracked.data_processing.info.run_id
    assert {"plots/dataset_summary.png", "data/split_manifest.csv"} <= artifact_paths(
        client, processing
    )


def test_the_logged_model_reloads_and_predicts_like_the_run(tracked: Tracked) -> None:
    run_id = tracked.trainings[3].info.run_id
    mlflow.set_tracking_uri(tracked.uri)
    predictions = pd.read_csv(tracked.project / "data/07_model_output/test_predictions.csv")
    rows = predictions.head(8)
    # The package returns the network's probabilities calibrated by the report's temperature.
    report = json.loads((tracked.project / "data/08_reporting/test_metrics.json").read_text())
    expected = apply_temperature(rows["probability"], report["calibration"]["temperature"])
    images = np.stack(
        [
            decode_grey_png((tracked.project / f"data/03_primary/images/{key}.png").read_bytes())
            for key in rows["image_id"]
        ]
    )[..., None].astype("float32")

    # The servable package: the network (without Adam's state) and its settings...
    classifier = load_classifier(f"runs:/{run_id}/model")
    assert getattr(classifier.model, "optimizer", None) is None
    assert classifier.settings.image_size == (64, 64)
    probability = classifier.probabilities(images)
    assert probability == pytest.approx(expected, abs=1e-5)

    # ... served as pyfunc: image files in (base64), probability and label out.
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    encoded = [
        base64.b64encode(
            (tracked.project / f"data/03_primary/images/{key}.png").read_bytes()
        ).decode()
        for key in rows["image_id"]
    ]
    answer = pyfunc.predict(pd.DataFrame({"image": encoded}))
    assert answer["probability"].to_numpy() == pytest.approx(expected, abs=1e-5)
