"""Nodes of the training pipeline: thin wrappers around trainer, metrics and plots."""

from __future__ import annotations

import logging
from collections.abc import Callable

import keras
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from chest_xray.inputs import decode_grey_png, load_image_array
from chest_xray.metrics import evaluation_report
from chest_xray.params import EvaluationParams, TrainingParams
from chest_xray.plots import (
    plot_confusion_matrix,
    plot_prediction_gallery,
    plot_roc_curve,
    plot_training_curves,
)
from chest_xray.trainer import predict_probabilities, train_classifier

logger = logging.getLogger(__name__)

PartitionLoaders = dict[str, Callable[[], bytes]]
PREDICTION_COLUMNS = ["image_id", "label", "y_true", "probability"]


def _split(manifest: pd.DataFrame, split: str) -> pd.DataFrame:
    return manifest[manifest["split"] == split].sort_values("image_id").reset_index(drop=True)


def _targets(rows: pd.DataFrame, classes: tuple[str, str]) -> np.ndarray:
    unknown = sorted(set(rows["label"]) - set(classes))
    if unknown:
        raise ValueError(f"split_manifest has label(s) {unknown} not in classes {classes}")
    return rows["label"].map({name: index for index, name in enumerate(classes)}).to_numpy()


def train_model(
    processed_images: PartitionLoaders, split_manifest: pd.DataFrame, params: TrainingParams
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Fit the network on the train split, monitoring the validation split."""
    train, validation = _split(split_manifest, "train"), _split(split_manifest, "validation")
    x_train = load_image_array(processed_images, train["image_id"], params.loader_threads)
    x_val = load_image_array(processed_images, validation["image_id"], params.loader_threads)
    logger.info(
        "Training on %d images, validating on %d, input %s (uint8, %.0f MB in memory)",
        len(x_train),
        len(x_val),
        x_train.shape[1:],
        (x_train.nbytes + x_val.nbytes) / 1e6,
    )
    model, history = train_classifier(
        x_train,
        _targets(train, params.classes),
        x_val,
        _targets(validation, params.classes),
        params,
        log=logger,
    )
    return model, history


def plot_training_history(training_history: dict[str, list[float]]) -> Figure:
    """Loss and accuracy per epoch, train against validation."""
    return plot_training_curves(training_history)


def predict(
    model: keras.Model,
    processed_images: PartitionLoaders,
    split_manifest: pd.DataFrame,
    params: TrainingParams,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Probability of the positive class for every validation and test image."""
    tables = []
    for split in ("validation", "test"):
        rows = _split(split_manifest, split)
        if rows.empty:
            logger.warning("The %s split is empty: no predictions for it", split)
            tables.append(pd.DataFrame(columns=PREDICTION_COLUMNS))
            continue
        images = load_image_array(processed_images, rows["image_id"], params.loader_threads)
        probability = predict_probabilities(model, images, params.micro_batch_size)
        tables.append(
            pd.DataFrame(
                {
                    "image_id": rows["image_id"],
                    "label": rows["label"],
                    "y_true": _targets(rows, params.classes),
                    "probability": probability.astype(float),
                }
            )
        )
    return tables[0], tables[1]


def evaluate(
    validation_predictions: pd.DataFrame,
    test_predictions: pd.DataFrame,
    params: EvaluationParams,
) -> dict:
    """Test metrics at the fixed threshold and at one chosen on validation."""
    if test_predictions.empty:
        raise ValueError(
            "The test split is empty (no TEST image has a file): nothing to evaluate. "
            "Point raw_root at a dataset with test images."
        )
    report = evaluation_report(
        test_predictions["y_true"].to_numpy(int),
        test_predictions["probability"].to_numpy(float),
        validation_predictions["y_true"].to_numpy(int),
        validation_predictions["probability"].to_numpy(float),
        params,
    )
    fixed = report["test"]["at_fixed_threshold"]
    logger.info(
        "Test (n=%d): accuracy %.4f, sensitivity %.4f, specificity %.4f, AUC %s",
        report["test"]["n"],
        fixed["accuracy"],
        fixed["sensitivity"],
        fixed["specificity"],
        report["test"]["auc"],
    )
    return report


def plot_evaluation(
    test_predictions: pd.DataFrame, test_metrics: dict, params: EvaluationParams
) -> tuple[Figure, Figure]:
    """Confusion matrix (at the fixed threshold) and ROC curve with operating points."""
    test = test_metrics["test"]
    fixed = test["at_fixed_threshold"]
    confusion = plot_confusion_matrix(
        fixed["confusion_matrix"],
        params.classes,
        title=f"Test set, threshold {fixed['threshold']:.2f}",
    )
    points = {"fixed": fixed["threshold"]}
    tuned = test.get("at_validation_threshold")
    if tuned:
        points[f"{tuned['strategy']} on validation"] = tuned["threshold"]
    roc = plot_roc_curve(
        test_predictions["y_true"].to_numpy(int),
        test_predictions["probability"].to_numpy(float),
        auc=test["auc"],
        operating_points=points,
    )
    return confusion, roc


def plot_gallery(
    test_predictions: pd.DataFrame, processed_images: PartitionLoaders, params: EvaluationParams
) -> Figure:
    """A grid of random test images titled actual / predicted, as in the write-up."""
    chosen = test_predictions.sample(
        n=min(params.gallery.n_images, len(test_predictions)), random_state=params.gallery.seed
    ).sort_values("image_id")
    images = [decode_grey_png(processed_images[key](), key=key) for key in chosen["image_id"]]
    predicted = np.where(chosen["probability"] >= params.threshold, 1, 0)
    return plot_prediction_gallery(
        images,
        actual=chosen["label"].tolist(),
        predicted=[params.classes[p] for p in predicted],
        prob=chosen["probability"].tolist(),
        columns=params.gallery.columns,
    )
