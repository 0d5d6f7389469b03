"""Nodes of the evaluation pipeline: predict with the saved model, score, draw the figures."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from chest_xray.data.params import PreprocessingParams
from chest_xray.data.partitions import PartitionLoaders
from chest_xray.evaluation.calibration import calibration_section
from chest_xray.evaluation.gradcam import gradcam
from chest_xray.evaluation.gradcam_gallery import gradcam_gallery_figure
from chest_xray.evaluation.metrics import evaluation_report, multiclass_report
from chest_xray.evaluation.params import EvaluationParams
from chest_xray.evaluation.plots import (
    confusion_grid_figure,
    confusion_matrix_figure,
    gallery_title,
    one_vs_rest_roc_figure,
    prediction_gallery_figure,
    reliability_diagram_figure,
    roc_curve_figure,
)
from chest_xray.evaluation.prior_shift import shifted_probabilities, threshold_before_shift
from chest_xray.inference.packaging import ServableModel
from chest_xray.inference.settings import settings_from_evaluation
from chest_xray.modeling import KerasModel
from chest_xray.modeling.inputs import (
    decode_grey_png,
    label_indices,
    load_image_array,
    split_rows,
)
from chest_xray.modeling.params import TrainingParams
from chest_xray.modeling.tta import tta_probabilities

logger = logging.getLogger(__name__)

# The columns of validation_predictions and test_predictions (binary task); a multiclass
# model's tables have one ``probability_<CLASS>`` column per class instead of ``probability``.
PREDICTION_COLUMNS = ["image_id", "label", "y_true", "probability"]


def probability_columns(classes: Sequence[str]) -> list[str]:
    """A multiclass predictions table's probability columns, in class (output) order."""
    return [f"probability_{name}" for name in classes]


def prediction_columns(training: TrainingParams) -> list[str]:
    """The columns of a predictions table for ``training.task``."""
    if training.task == "binary":
        return PREDICTION_COLUMNS
    return [*PREDICTION_COLUMNS[:3], *probability_columns(training.class_names)]


def predict(
    model: KerasModel,
    processed_images: PartitionLoaders,
    split_manifest: pd.DataFrame,
    params: TrainingParams,
    evaluation: EvaluationParams,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Probability of the positive class for every validation and test image
    (averaged over ``evaluation.tta``'s views when set); a multiclass model's
    probability of each class (``probability_<CLASS>`` columns)."""
    from chest_xray.modeling.trainer import predict_probabilities  # Keras: only when predicting

    tables = []
    for split in ("validation", "test"):
        rows = split_rows(split_manifest, split)
        if rows.empty:
            logger.warning("The %s split is empty: no predictions for it", split)
            tables.append(pd.DataFrame(columns=prediction_columns(params)))
            continue
        images = load_image_array(processed_images, rows["image_id"], params.loader_threads)
        if evaluation.tta == "none":
            probability = predict_probabilities(model, images, params.micro_batch_size)
        else:
            probability = tta_probabilities(model, images, params.micro_batch_size, evaluation.tta)
        tables.append(prediction_table(rows, probability, params))
    return tables[0], tables[1]


def prediction_table(
    rows: pd.DataFrame, probability: np.ndarray, params: TrainingParams
) -> pd.DataFrame:
    """The predictions table (``prediction_columns``) of the manifest ``rows``, scored
    ``probability``: (N,) for the binary task, (N, K) for multiclass."""
    classes = params.class_names
    table = pd.DataFrame(
        {
            "image_id": rows["image_id"],
            "label": rows["label"],
            "y_true": label_indices(rows, classes),
        }
    )
    if params.task == "binary":
        table["probability"] = probability.astype(float)
    else:
        _check_outputs(probability, classes)
        for column, values in zip(probability_columns(classes), probability.T, strict=True):
            table[column] = values.astype(float)
    return table


def _check_outputs(probability: np.ndarray, classes: Sequence[str]) -> None:
    """A model trained for another task (or class list) fails here, not as bad metrics."""
    if probability.ndim != 2 or probability.shape[1] != len(classes):
        raise ValueError(
            f"The model outputs {probability.shape[1:] or 'one probability'} per image, but "
            f"training.task=multiclass has {len(classes)} classes {list(classes)}: the saved "
            "model was trained for another task; train it again (kedro run)"
        )


def report_labels(predictions: pd.DataFrame) -> np.ndarray:
    """The ``y_true`` column as integers (the labels every report is computed on)."""
    return predictions["y_true"].to_numpy(int)


def training_prevalence(split_manifest: pd.DataFrame, params: TrainingParams) -> float | None:
    """The share of the positive class the model was trained on, for the prior shift.

    That is the train split's share of ``classes[1]``, except under
    ``class_weight: balanced``: weighting each class by n / (2 * n_class) trains
    as if both classes were equally common, so the model's prior is 0.5. None
    when the train split is empty (the report then takes the validation labels').
    """
    if params.class_weight == "balanced":
        return 0.5
    train = split_rows(split_manifest, "train")
    if train.empty:
        return None
    return float((train["label"] == params.classes[1]).mean())


def evaluate(
    validation_predictions: pd.DataFrame,
    test_predictions: pd.DataFrame,
    split_manifest: pd.DataFrame,
    training: TrainingParams,
    params: EvaluationParams,
) -> dict[str, Any]:
    """Test metrics at the fixed threshold and at one chosen on validation.

    The split manifest and training parameters only serve
    ``evaluation.target_prevalence``: they say what prevalence the model learnt.
    """
    if test_predictions.empty:
        raise ValueError(
            "The test split is empty (no TEST image has a file): nothing to evaluate. "
            "Point raw_root at a dataset with test images."
        )
    if training.task == "multiclass":
        return _evaluate_multiclass(validation_predictions, test_predictions, training, params)
    if "probability" not in test_predictions.columns:
        raise ValueError(
            "test_predictions has no 'probability' column: it holds a multiclass model's "
            "predictions; run the evaluation with training.task=multiclass"
        )
    report = evaluation_report(
        test_predictions["y_true"].to_numpy(int),
        test_predictions["probability"].to_numpy(float),
        validation_predictions["y_true"].to_numpy(int),
        validation_predictions["probability"].to_numpy(float),
        params,
        train_prevalence=(
            None
            if params.target_prevalence is None
            else training_prevalence(split_manifest, training)
        ),
    )
    report["calibration"] = calibration_section(
        report_labels(test_predictions),
        test_predictions["probability"].to_numpy(float),
        report_labels(validation_predictions),
        validation_predictions["probability"].to_numpy(float),
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


def _evaluate_multiclass(
    validation_predictions: pd.DataFrame,
    test_predictions: pd.DataFrame,
    training: TrainingParams,
    params: EvaluationParams,
) -> dict[str, Any]:
    """The multiclass report: argmax decides, so no threshold or prior shift applies."""
    classes = training.class_names
    columns = probability_columns(classes)
    missing = [c for c in columns if c not in test_predictions.columns]
    if missing:
        raise ValueError(
            f"test_predictions lacks {missing}: it was not made by a multiclass model of the "
            f"classes {list(classes)}; predict again (kedro run --pipelines=evaluation)"
        )
    report = multiclass_report(
        test_predictions["y_true"].to_numpy(int),
        test_predictions[columns].to_numpy(float),
        validation_predictions["y_true"].to_numpy(int),
        validation_predictions.reindex(columns=columns).to_numpy(float),
        classes,
        params.bootstrap,
    )
    report["calibration"] = calibration_section(
        report_labels(test_predictions),
        test_predictions[columns].to_numpy(float),
        report_labels(validation_predictions),
        validation_predictions.reindex(columns=columns).to_numpy(float),
        multiclass=True,
    )
    test = report["test"]
    logger.info(
        "Test (n=%d, %s): accuracy %.4f, macro F1 %.4f, macro AUC %s; sensitivity %s",
        test["n"],
        "/".join(classes),
        test["accuracy"],
        test["macro_f1"],
        test["auc"],
        {name: round(values["sensitivity"], 3) for name, values in test["per_class"].items()},
    )
    return report


def plot_evaluation(
    test_predictions: pd.DataFrame, test_metrics: dict[str, Any], params: EvaluationParams
) -> tuple[Figure, Figure]:
    """Confusion matrix (at the fixed threshold) and ROC curve with operating points.

    The curve is drawn from the probabilities the report's thresholds apply to
    (shifted when ``target_prevalence`` is set), so each point lands where it should.
    A multiclass report gets its K x K matrix and one one-vs-rest curve per class.
    """
    test = test_metrics["test"]
    if test_metrics.get("task") == "multiclass":
        classes = test_metrics["classes"]
        confusion = confusion_grid_figure(
            test["confusion_matrix"], classes, title="Test set, most probable class"
        )
        roc = one_vs_rest_roc_figure(
            test_predictions["y_true"].to_numpy(int),
            test_predictions[probability_columns(classes)].to_numpy(float),
            classes,
            aucs={name: values["auc"] for name, values in test["per_class"].items()},
        )
        return confusion, roc
    fixed = test["at_fixed_threshold"]
    confusion = confusion_matrix_figure(
        fixed["confusion_matrix"],
        params.classes,
        title=f"Test set, threshold {fixed['threshold']:.2f}",
    )
    points = {"fixed": fixed["threshold"]}
    tuned = test.get("at_validation_threshold")
    if tuned:
        points[f"{tuned['strategy']} on validation"] = tuned["threshold"]
    roc = roc_curve_figure(
        test_predictions["y_true"].to_numpy(int),
        shifted_probabilities(test_predictions["probability"].to_numpy(float), test_metrics),
        auc=test["auc"],
        operating_points=points,
    )
    return confusion, roc


def plot_reliability_diagram(test_metrics: dict[str, Any]) -> Figure:
    """The test split's reliability diagram, before and after the validation temperature."""
    return reliability_diagram_figure(test_metrics.get("calibration") or {})


def plot_prediction_gallery(
    test_predictions: pd.DataFrame,
    processed_images: PartitionLoaders,
    test_metrics: dict[str, Any],
    params: EvaluationParams,
) -> Figure:
    """A grid of random test images titled actual / predicted, as in the write-up.

    Predicted at the fixed threshold on the report's probabilities (shifted when
    ``target_prevalence`` is set), so the gallery agrees with the confusion matrix.
    """
    chosen, images, prob, predicted = _gallery(
        test_predictions, processed_images, test_metrics, params
    )
    return prediction_gallery_figure(
        images,
        actual=chosen["label"].tolist(),
        predicted=predicted,
        prob=prob.tolist(),
        columns=params.gallery.columns,
    )


def plot_gradcam_gallery(
    model: KerasModel,
    test_predictions: pd.DataFrame,
    processed_images: PartitionLoaders,
    test_metrics: dict[str, Any],
    params: EvaluationParams,
) -> Figure:
    """The prediction gallery's images beside their Grad-CAM heat maps.

    Each map shows the evidence for the class the gallery shows as predicted;
    the model's own probabilities decide it (before any prior shift, which only
    moves the threshold: the fixed threshold is mapped back onto them).
    """
    chosen, images, prob, predicted = _gallery(
        test_predictions, processed_images, test_metrics, params
    )
    multiclass = test_metrics.get("task") == "multiclass"
    heatmaps = gradcam(
        model,
        np.stack(images)[..., np.newaxis],
        target="predicted",
        threshold=(
            0.5 if multiclass else threshold_before_shift(params.threshold, _shift(test_metrics))
        ),
    )
    titles = [
        gallery_title(actual, guess, p)
        for actual, guess, p in zip(chosen["label"], predicted, prob, strict=True)
    ]
    wrong = [actual != guess for actual, guess in zip(chosen["label"], predicted, strict=True)]
    return gradcam_gallery_figure(
        images, list(heatmaps), titles, columns=params.gallery.columns, wrong=wrong
    )


def _gallery(
    test_predictions: pd.DataFrame,
    processed_images: PartitionLoaders,
    test_metrics: dict[str, Any],
    params: EvaluationParams,
) -> tuple[pd.DataFrame, list[np.ndarray], np.ndarray, list[str]]:
    """The gallery's sample (seeded), its images, report probabilities and predicted classes.

    Multiclass: the predicted class is the most probable one, shown with its probability.
    """
    chosen = test_predictions.sample(
        n=min(params.gallery.n_images, len(test_predictions)), random_state=params.gallery.seed
    ).sort_values("image_id")
    images = [decode_grey_png(processed_images[key](), key=key) for key in chosen["image_id"]]
    if test_metrics.get("task") == "multiclass":
        classes = test_metrics["classes"]
        matrix = chosen[probability_columns(classes)].to_numpy(float)
        best = matrix.argmax(axis=1)
        return chosen, images, matrix.max(axis=1), [classes[k] for k in best]
    prob = shifted_probabilities(chosen["probability"].to_numpy(float), test_metrics)
    predicted = [params.classes[int(p >= params.threshold)] for p in prob]
    return chosen, images, prob, predicted


def _shift(report: dict[str, Any]) -> tuple[float, float] | None:
    """The report's prior shift as (source, target), None when it records none."""
    shift = report.get("prior_shift")
    return None if shift is None else (shift["from"], shift["to"])


def package_model(
    model: KerasModel,
    test_metrics: dict[str, Any],
    preprocessing: PreprocessingParams,
    params: EvaluationParams,
) -> ServableModel:
    """The model with what using it needs: its preprocessing settings and threshold.

    Saved as a versioned MLflow pyfunc folder (``servable_model``), logged to the
    run as ``model`` and registered (catalog.yml says so).
    """
    settings = settings_from_evaluation(test_metrics, preprocessing, params)
    logger.info(
        "Packaged the model: %dx%d %s, %s",
        *settings.image_size,
        settings.resize_mode,
        settings.decision,
    )
    return ServableModel(model, settings)
