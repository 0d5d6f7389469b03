"""Metrics checked against confusion matrices and thresholds worked out by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chest_xray.evaluation.metrics import (
    binary_metrics,
    choose_threshold,
    evaluation_report,
    flat_metrics,
    roc_auc,
)
from chest_xray.params import EvaluationParams

# Ten cases at threshold 0.5: positives 0.9 0.8 0.7 0.6 (tp) and 0.3 (fn);
# negatives 0.1 0.2 0.4 (tn) and 0.55 0.65 (fp).  -> tn=3, fp=2, fn=1, tp=4.
Y = [1, 0, 1, 0, 1, 0, 1, 0, 1, 0]
P = [0.9, 0.1, 0.8, 0.2, 0.7, 0.4, 0.6, 0.55, 0.3, 0.65]


def test_binary_metrics_match_hand_computed_confusion_matrix() -> None:
    result = binary_metrics(Y, P, 0.5)

    assert result["confusion_matrix"] == {"tn": 3, "fp": 2, "fn": 1, "tp": 4}
    assert result["n"] == 10
    assert result["threshold"] == 0.5
    assert result["accuracy"] == pytest.approx(7 / 10)
    assert result["sensitivity"] == pytest.approx(4 / 5)
    assert result["specificity"] == pytest.approx(3 / 5)
    assert result["precision"] == pytest.approx(4 / 6)
    assert result["f1"] == pytest.approx(8 / 11)  # 2tp / (2tp + fp + fn)


def test_binary_metrics_are_plain_python_types() -> None:
    result = binary_metrics(np.array(Y), np.array(P, dtype=np.float32), 0.5)

    for key in ("accuracy", "sensitivity", "specificity", "precision", "f1", "threshold"):
        assert type(result[key]) is float
    assert type(result["n"]) is int
    assert all(type(v) is int for v in result["confusion_matrix"].values())
    assert json.loads(json.dumps(result)) == result


def test_probability_equal_to_threshold_counts_as_positive() -> None:
    result = binary_metrics([1, 0], [0.5, 0.49], 0.5)

    assert result["confusion_matrix"] == {"tn": 1, "fp": 0, "fn": 0, "tp": 1}


def test_all_positive_guess_has_full_sensitivity_and_no_specificity() -> None:
    result = binary_metrics(Y, [0.99] * len(Y), 0.5)

    assert result["sensitivity"] == 1.0
    assert result["specificity"] == 0.0
    assert result["precision"] == pytest.approx(5 / 10)
    assert result["confusion_matrix"] == {"tn": 0, "fp": 5, "fn": 0, "tp": 5}


def test_absent_class_gives_zero_not_nan() -> None:
    only_normal = binary_metrics([0, 0, 0], [0.1, 0.2, 0.3], 0.5)

    assert only_normal["accuracy"] == 1.0
    assert only_normal["specificity"] == 1.0
    assert only_normal["sensitivity"] == 0.0  # no positives: 0/0 -> 0
    assert only_normal["precision"] == 0.0  # nothing called positive: 0/0 -> 0
    assert only_normal["f1"] == 0.0


def test_keras_column_predictions_are_accepted() -> None:
    result = binary_metrics(np.array(Y, dtype=np.float32), np.array(P).reshape(-1, 1), 0.5)

    assert result["confusion_matrix"]["tp"] == 4


@pytest.mark.parametrize(
    ("y_true", "prob", "message"),
    [
        ([0, 1], [0.1], "equal length"),
        ([0, 2], [0.1, 0.9], "only 0 and 1"),
        ([0, 1], [0.1, 1.5], r"\[0, 1\]"),
        ([0, 1], [0.1, float("nan")], r"\[0, 1\]"),
        ([], [], "at least one"),
    ],
)
def test_binary_metrics_rejects_bad_input(y_true: list, prob: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        binary_metrics(y_true, prob, 0.5)


def test_auc_of_perfect_separation_is_one() -> None:
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0


def test_auc_counts_misordered_pairs() -> None:
    # Pairs (pos, neg): 25; misordered: 0.3 < 0.4, 0.55, 0.65 and 0.6 < 0.65 -> 4.
    assert roc_auc(Y, P) == pytest.approx(21 / 25)


@pytest.mark.parametrize("y_true", [[1, 1, 1], [0, 0], []])
def test_auc_is_none_without_both_classes(y_true: list[int]) -> None:
    assert roc_auc(y_true, [0.5] * len(y_true)) is None


@pytest.mark.parametrize("strategy", ["youden", "accuracy"])
def test_threshold_separates_an_obvious_split(strategy: str) -> None:
    y = [0, 0, 0, 1, 1, 1]
    p = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]

    threshold = choose_threshold(y, p, strategy)  # type: ignore[arg-type]

    # youden uses the ROC threshold (lowest positive score); accuracy the midpoint.
    assert threshold == pytest.approx({"youden": 0.7, "accuracy": 0.5}[strategy])
    assert binary_metrics(y, p, threshold)["accuracy"] == 1.0


def test_accuracy_threshold_finds_the_best_split() -> None:
    # Accuracy by candidate: 1.0 -> 3/5, 0.8 -> 2/5, 0.65 -> 3/5, 0.4 -> 4/5, 0.15 -> 3/5.
    y = [0, 0, 1, 1, 0]
    p = [0.1, 0.2, 0.6, 0.7, 0.9]

    assert choose_threshold(y, p, "accuracy") == pytest.approx(0.4)


@pytest.mark.parametrize(("strategy", "expected"), [("youden", 0.4), ("accuracy", 0.35)])
def test_ties_go_to_the_highest_threshold(strategy: str, expected: float) -> None:
    # Youden J: 0.4 -> 0.5, 0.3 -> 0, 0.2 -> 0.5. Accuracy: 0.35 and 0.15 -> 3/4.
    y = [0, 1, 0, 1]
    p = [0.1, 0.2, 0.3, 0.4]

    assert choose_threshold(y, p, strategy) == pytest.approx(expected)  # type: ignore[arg-type]


def test_youden_clips_the_infinite_threshold() -> None:
    # A reversed classifier: calling nothing positive (J = 0) beats every finite threshold.
    assert choose_threshold([1, 0], [0.2, 0.8], "youden") == 1.0


def test_choose_threshold_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both classes"):
        choose_threshold([1, 1], [0.2, 0.8], "youden")


# ------------------------------------------------------------------ evaluation report

VAL_Y = [0, 0, 0, 1, 1, 1]
VAL_P = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]


def test_evaluation_report_structure_and_values() -> None:
    params = EvaluationParams(threshold=0.5, validation_threshold="youden")

    report = evaluation_report(Y, P, VAL_Y, VAL_P, params)

    assert report["positive_class"] == "PNEUMONIA"
    assert report["negative_class"] == "NORMAL"
    test, validation = report["test"], report["validation"]
    assert test["n"] == 10
    assert test["auc"] == pytest.approx(21 / 25)
    assert test["at_fixed_threshold"] == binary_metrics(Y, P, 0.5)
    assert validation == {
        "n": 6,
        "auc": 1.0,
        "at_fixed_threshold": binary_metrics(VAL_Y, VAL_P, 0.5),
        "chosen_threshold": pytest.approx(0.7),
    }
    tuned = test["at_validation_threshold"]
    assert tuned["strategy"] == "youden"
    assert tuned["threshold"] == pytest.approx(0.7)
    # At 0.7 on test: tp 0.9 0.8 0.7, fn 0.6 0.3, tn all five negatives.
    assert tuned["confusion_matrix"] == {"tn": 5, "fp": 0, "fn": 2, "tp": 3}
    assert json.loads(json.dumps(report)) == report


def test_evaluation_report_with_empty_validation() -> None:
    report = evaluation_report(Y, P, [], [], EvaluationParams())

    assert report["validation"] == {
        "n": 0,
        "auc": None,
        "at_fixed_threshold": None,
        "chosen_threshold": None,
    }
    assert report["test"]["at_validation_threshold"] is None
    json.dumps(report)


def test_evaluation_report_with_strategy_none_chooses_nothing() -> None:
    params = EvaluationParams(validation_threshold="none")

    report = evaluation_report(Y, P, VAL_Y, VAL_P, params)

    assert report["validation"]["chosen_threshold"] is None
    assert report["validation"]["auc"] == 1.0
    assert report["test"]["at_validation_threshold"] is None


def test_evaluation_report_with_single_class_validation() -> None:
    report = evaluation_report(Y, P, [1, 1], [0.6, 0.9], EvaluationParams())

    assert report["validation"]["auc"] is None
    assert report["validation"]["chosen_threshold"] is None
    assert report["validation"]["at_fixed_threshold"]["sensitivity"] == 1.0


def test_evaluation_report_uses_class_names_from_params() -> None:
    params = EvaluationParams(classes=("healthy", "sick"))

    report = evaluation_report(Y, P, VAL_Y, VAL_P, params)

    assert (report["negative_class"], report["positive_class"]) == ("healthy", "sick")


# ----------------------------------------------------------------------- flat metrics

RATES = ("accuracy", "sensitivity", "specificity", "precision", "f1")


def test_flat_metrics_name_test_tuned_and_validation_values() -> None:
    params = EvaluationParams(validation_threshold="accuracy")
    flat = flat_metrics(evaluation_report(Y, P, VAL_Y, VAL_P, params))

    expected = (
        {f"test_{k}" for k in (*RATES, "auc", "threshold")}
        | {f"test_tuned_{k}" for k in (*RATES, "threshold")}
        | {f"validation_{k}" for k in (*RATES, "auc")}
    )
    assert set(flat) == expected
    assert all(type(v) is float for v in flat.values())
    assert flat["test_accuracy"] == pytest.approx(0.7)
    assert flat["test_threshold"] == 0.5
    assert flat["test_tuned_threshold"] == pytest.approx(0.5)
    assert flat["validation_auc"] == 1.0
    assert flat["validation_accuracy"] == 1.0


def test_flat_metrics_drops_missing_values() -> None:
    flat = flat_metrics(evaluation_report(Y, [0.9] * 10, [], [], EvaluationParams()))

    assert set(flat) == {f"test_{k}" for k in (*RATES, "auc", "threshold")}
    assert flat["test_auc"] == 0.5  # constant scores: every pair tied
