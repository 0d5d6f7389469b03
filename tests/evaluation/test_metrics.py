"""Metrics checked against confusion matrices and thresholds worked out by hand."""

from __future__ import annotations

import json
from typing import Literal

import numpy as np
import pytest

from chest_xray.evaluation.metrics import (
    binary_metrics,
    evaluation_report,
    flat_metrics,
    roc_auc,
)
from chest_xray.evaluation.prior_shift import shifted_probabilities
from chest_xray.params import EvaluationParams

RATES = ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "precision", "f1")

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
    assert result["balanced_accuracy"] == pytest.approx((4 / 5 + 3 / 5) / 2)
    assert result["sensitivity"] == pytest.approx(4 / 5)
    assert result["specificity"] == pytest.approx(3 / 5)
    assert result["precision"] == pytest.approx(4 / 6)
    assert result["f1"] == pytest.approx(8 / 11)  # 2tp / (2tp + fp + fn)


def test_binary_metrics_are_plain_python_types() -> None:
    result = binary_metrics(np.array(Y), np.array(P, dtype=np.float32), 0.5)

    for key in (*RATES, "threshold"):
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
    # The mean of the two rates above, not scikit-learn's mean over present classes (1.0).
    assert only_normal["balanced_accuracy"] == 0.5


def test_balanced_accuracy_ignores_prevalence_where_accuracy_does_not() -> None:
    # Same sensitivity (1/2) and specificity (1.0), NORMAL repeated 1x and 9x.
    few = binary_metrics([1, 1, 0], [0.9, 0.1, 0.1], 0.5)
    many = binary_metrics([1, 1] + [0] * 9, [0.9, 0.1] + [0.1] * 9, 0.5)

    assert few["balanced_accuracy"] == many["balanced_accuracy"] == pytest.approx(0.75)
    assert (few["accuracy"], many["accuracy"]) == pytest.approx((2 / 3, 10 / 11))


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


# ------------------------------------------------------- the report under a prior shift


def test_evaluation_report_without_target_prevalence_has_no_prior_shift() -> None:
    params = EvaluationParams()

    report = evaluation_report(Y, P, VAL_Y, VAL_P, params, train_prevalence=0.9)

    assert "prior_shift" not in report
    assert report == evaluation_report(Y, P, VAL_Y, VAL_P, params)
    assert shifted_probabilities(P, report) == pytest.approx(P)


def test_prior_shift_moves_the_fixed_point_but_not_the_auc() -> None:
    params = EvaluationParams(threshold=0.5, target_prevalence=0.5)

    report = evaluation_report(Y, P, VAL_Y, VAL_P, params, train_prevalence=0.75)

    assert report["prior_shift"] == {"from": 0.75, "to": 0.5}
    assert report["test"]["auc"] == roc_auc(Y, P) == pytest.approx(21 / 25)
    assert report["validation"]["auc"] == 1.0
    # 0.5 after the shift is 0.75 before it: tp 0.9 0.8, fn 0.7 0.6 0.3, no fp.
    fixed = report["test"]["at_fixed_threshold"]
    assert fixed["confusion_matrix"] == {"tn": 5, "fp": 0, "fn": 3, "tp": 2}
    assert shifted_probabilities([0.75], report) == pytest.approx([0.5])
    assert json.loads(json.dumps(report)) == report


@pytest.mark.parametrize("rule", ["youden", "equal_error"])
def test_prior_shift_keeps_the_validation_operating_point_at_a_shifted_threshold(
    rule: Literal["youden", "equal_error"],
) -> None:
    plain = evaluation_report(Y, P, VAL_Y, VAL_P, EvaluationParams(validation_threshold=rule))
    shifted = evaluation_report(
        Y,
        P,
        VAL_Y,
        VAL_P,
        EvaluationParams(validation_threshold=rule, target_prevalence=0.5),
        train_prevalence=0.75,
    )

    before, after = (r["test"]["at_validation_threshold"] for r in (plain, shifted))
    assert after["confusion_matrix"] == before["confusion_matrix"]
    # 0.7 -> (0.7 * 2/3) / (0.7 * 2/3 + 0.3 * 2) = 7/16.
    assert (before["threshold"], after["threshold"]) == pytest.approx((0.7, 7 / 16))


def test_prior_shift_takes_the_validation_prevalence_when_train_is_unknown() -> None:
    report = evaluation_report(
        Y, P, [0, 1, 1, 1], [0.1, 0.7, 0.8, 0.9], EvaluationParams(target_prevalence=0.25)
    )

    assert report["prior_shift"] == {"from": 0.75, "to": 0.25}


def test_prior_shift_without_train_or_validation_labels_stops() -> None:
    with pytest.raises(ValueError, match="training prevalence"):
        evaluation_report(Y, P, [], [], EvaluationParams(target_prevalence=0.5))


def test_target_prevalence_must_be_a_share() -> None:
    with pytest.raises(ValueError, match="target_prevalence"):
        EvaluationParams(target_prevalence=1.0)


# ----------------------------------------------------------------------- flat metrics


def test_flat_metrics_name_test_tuned_and_validation_values() -> None:
    params = EvaluationParams(validation_threshold="accuracy")
    flat = flat_metrics(evaluation_report(Y, P, VAL_Y, VAL_P, params))

    with_interval = ("accuracy", "sensitivity", "specificity", "balanced_accuracy")
    expected = (
        {f"test_{k}" for k in (*RATES, "auc", "threshold")}
        | {f"test_tuned_{k}" for k in (*RATES, "threshold")}
        | {f"validation_{k}" for k in (*RATES, "auc")}
        | {f"test_{k}_ci_{end}" for k in (*with_interval, "auc") for end in ("low", "high")}
        | {f"test_tuned_{k}_ci_{end}" for k in with_interval for end in ("low", "high")}
    )
    assert set(flat) == expected
    assert all(type(v) is float for v in flat.values())
    assert flat["test_accuracy"] == pytest.approx(0.7)
    assert flat["test_balanced_accuracy"] == pytest.approx(0.7)  # (4/5 + 3/5) / 2
    assert flat["test_threshold"] == 0.5
    assert flat["test_tuned_threshold"] == pytest.approx(0.5)
    assert flat["validation_auc"] == 1.0
    assert flat["validation_accuracy"] == 1.0


def test_flat_metrics_drops_missing_values() -> None:
    flat = flat_metrics(evaluation_report(Y, [0.9] * 10, [], [], EvaluationParams()))

    intervals = ("accuracy", "sensitivity", "specificity", "balanced_accuracy", "auc")
    assert set(flat) == {f"test_{k}" for k in (*RATES, "auc", "threshold")} | {
        f"test_{k}_ci_{end}" for k in intervals for end in ("low", "high")
    }
    assert flat["test_auc"] == 0.5  # constant scores: every pair tied
