"""Multiclass metrics against scikit-learn on a fixed example, their flat MLflow names,
and the K x K figures."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from chest_xray.evaluation.metrics import flat_metrics, multiclass_report
from chest_xray.evaluation.multiclass import multiclass_metrics
from chest_xray.evaluation.plots import confusion_grid_figure, one_vs_rest_roc_figure
from chest_xray.params import BootstrapParams

CLASSES = ["NORMAL", "BACTERIA", "VIRUS"]
# Ten fixed cases: true class, then the probabilities of NORMAL, BACTERIA, VIRUS.
Y = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2])
P = np.array(
    [
        [0.8, 0.1, 0.1],
        [0.6, 0.3, 0.1],
        [0.2, 0.5, 0.3],  # NORMAL called BACTERIA
        [0.1, 0.7, 0.2],
        [0.2, 0.6, 0.2],
        [0.1, 0.3, 0.6],  # BACTERIA called VIRUS
        [0.3, 0.4, 0.3],
        [0.1, 0.2, 0.7],
        [0.2, 0.5, 0.3],  # VIRUS called BACTERIA
        [0.1, 0.3, 0.6],
    ]
)


def test_metrics_equal_scikit_learn_on_a_fixed_example() -> None:
    found = multiclass_metrics(Y, P, CLASSES)
    pred = P.argmax(axis=1)
    assert found["accuracy"] == pytest.approx(accuracy_score(Y, pred)) == 0.7
    assert found["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(Y, pred))
    assert found["macro_f1"] == pytest.approx(f1_score(Y, pred, average="macro"))
    assert found["macro_precision"] == pytest.approx(precision_score(Y, pred, average="macro"))
    assert found["macro_auc"] == pytest.approx(
        roc_auc_score(Y, P, multi_class="ovr", average="macro")
    )
    assert found["confusion_matrix"] == confusion_matrix(Y, pred).tolist()
    assert found["confusion_matrix"] == [[2, 1, 0], [0, 3, 1], [0, 1, 2]]
    recalls = recall_score(Y, pred, average=None)
    precisions = precision_score(Y, pred, average=None)
    y = Y
    for k, name in enumerate(CLASSES):
        per_class = found["per_class"][name]
        assert per_class["sensitivity"] == pytest.approx(recalls[k])
        assert per_class["precision"] == pytest.approx(precisions[k])
        assert per_class["auc"] == pytest.approx(roc_auc_score(y == k, P[:, k]))
        assert per_class["specificity"] == pytest.approx(recall_score(y != k, pred != k))
        assert per_class["support"] == int((y == k).sum())


def test_a_class_absent_from_the_test_set_has_no_auc_and_leaves_the_macro_averages() -> None:
    """COVID-19 with no test image: its column exists, its AUC is None, the macros skip it."""
    prob = np.hstack([P * 0.9, np.full((len(P), 1), 0.1)])
    found = multiclass_metrics(Y, prob, [*CLASSES, "COVID-19"])
    assert found["per_class"]["COVID-19"]["auc"] is None
    assert found["per_class"]["COVID-19"]["support"] == 0
    assert found["classes_in_test"] == CLASSES
    assert found["macro_f1"] == pytest.approx(multiclass_metrics(Y, P, CLASSES)["macro_f1"])
    assert found["macro_auc"] == pytest.approx(multiclass_metrics(Y, P, CLASSES)["macro_auc"])


def test_bad_shapes_and_labels_are_refused() -> None:
    with pytest.raises(ValueError, match="3 class probabilities"):
        multiclass_metrics(Y, P[:, :2], CLASSES)
    with pytest.raises(ValueError, match="class indices"):
        multiclass_metrics(np.where(Y == 2, 5, Y), P, CLASSES)


def test_flat_metrics_name_every_class_and_interval() -> None:
    report = multiclass_report(Y, P, Y, P, CLASSES, BootstrapParams())
    flat = flat_metrics(report)
    assert flat["test_accuracy"] == pytest.approx(0.7)
    assert flat["test_auc"] == flat["test_macro_auc"]
    assert flat["test_auc_ci_low"] == flat["test_macro_auc_ci_low"]
    assert flat["validation_auc"] == flat["test_macro_auc"]  # the champion rule reads it
    for name in CLASSES:
        for key in ("sensitivity", "specificity", "precision", "f1", "auc"):
            assert f"test_{key}_{name}" in flat
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc"):
        assert flat[f"test_{key}_ci_low"] <= flat[f"test_{key}_ci_high"]
    assert all(isinstance(value, float) for value in flat.values())


def test_binary_flat_metrics_keep_their_names_and_add_intervals() -> None:
    from chest_xray.evaluation.metrics import evaluation_report
    from chest_xray.params import EvaluationParams

    y = (Y > 0).astype(int)
    prob = 1.0 - P[:, 0]
    flat = flat_metrics(evaluation_report(y, prob, y, prob, EvaluationParams()))
    for name in ("test_accuracy", "test_sensitivity", "test_specificity", "test_auc"):
        assert name in flat
        assert flat[f"{name}_ci_low"] <= flat[name] <= flat[f"{name}_ci_high"]
    assert "test_tuned_accuracy_ci_low" in flat


def test_the_confusion_figure_and_roc_curves_have_one_row_and_curve_per_class() -> None:
    fig = confusion_grid_figure([[2, 1, 0], [0, 3, 1], [0, 1, 2]], CLASSES, title="t")
    ax = fig.axes[0]
    assert [label.get_text() for label in ax.get_yticklabels()] == CLASSES
    assert len(ax.texts) == 9
    with pytest.raises(ValueError, match="3x3"):
        confusion_grid_figure([[1, 2], [3, 4]], CLASSES, title="t")
    aucs = {name: 0.8 for name in CLASSES}
    roc = one_vs_rest_roc_figure(Y, P, [*CLASSES], aucs=aucs)
    labels = roc.axes[0].get_legend_handles_labels()[1]
    assert labels[0] == "chance"
    assert labels[1:] == [f"{name} (AUC = 0.800)" for name in CLASSES]


def test_gradcam_of_a_softmax_model_maps_the_predicted_class() -> None:
    import keras

    from chest_xray.evaluation.gradcam import gradcam, gradcam_with_probabilities
    from chest_xray.modeling.model import build_model
    from chest_xray.params import ModelParams

    keras.utils.set_random_seed(0)
    model = build_model((32, 32, 1), ModelParams(conv_filters=[4], dense_units=8), n_classes=3)
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 1)).astype(np.float32)
    result = gradcam_with_probabilities(model, images, batch_size=2)
    assert result.probabilities.shape == (5, 3)
    np.testing.assert_allclose(result.probabilities, model.predict(images, verbose=0), atol=1e-5)
    assert result.heatmaps.shape == (5, 32, 32)
    assert result.heatmaps.min() >= 0.0 and result.heatmaps.max() <= 1.0
    with pytest.raises(ValueError, match="target='predicted'"):
        gradcam(model, images, target="pneumonia")
