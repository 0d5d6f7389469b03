"""The operating point chosen on validation, checked against thresholds worked out by hand."""

from __future__ import annotations

import pytest

from chest_xray.evaluation.metrics import binary_metrics
from chest_xray.evaluation.thresholds import choose_threshold


@pytest.mark.parametrize("strategy", ["youden", "accuracy", "equal_error"])
def test_threshold_separates_an_obvious_split(strategy: str) -> None:
    y = [0, 0, 0, 1, 1, 1]
    p = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]

    threshold = choose_threshold(y, p, strategy)  # type: ignore[arg-type]

    # youden and equal_error use the ROC threshold (lowest positive score); accuracy the midpoint.
    assert threshold == pytest.approx(
        {"youden": 0.7, "accuracy": 0.5, "equal_error": 0.7}[strategy]
    )
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


def test_equal_error_threshold_is_where_sensitivity_meets_specificity() -> None:
    # Same data as the ties test. (sens, spec) by ROC threshold: 0.4 -> (1/2, 1),
    # 0.3 -> (1/2, 1/2), 0.2 -> (1, 1/2), 0.1 -> (1, 0): equal only at 0.3, which
    # neither youden (0.4) nor accuracy (0.35) picks.
    y = [0, 1, 0, 1]
    p = [0.1, 0.2, 0.3, 0.4]

    threshold = choose_threshold(y, p, "equal_error")

    assert threshold == pytest.approx(0.3)
    point = binary_metrics(y, p, threshold)
    assert point["sensitivity"] == point["specificity"] == 0.5


def test_equal_error_takes_the_nearest_point_and_the_highest_threshold_on_ties() -> None:
    # |sens - spec| by ROC threshold: inf -> 1, 0.9 -> |1/2 - 1| = 1/2,
    # 0.5 -> |1/2 - 0| = 1/2, 0.1 -> |1 - 0| = 1. No exact equality; 0.9 and 0.5 tie.
    assert choose_threshold([1, 0, 1], [0.1, 0.5, 0.9], "equal_error") == pytest.approx(0.9)


def test_youden_clips_the_infinite_threshold() -> None:
    # A reversed classifier: calling nothing positive (J = 0) beats every finite threshold.
    assert choose_threshold([1, 0], [0.2, 0.8], "youden") == 1.0


def test_choose_threshold_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both classes"):
        choose_threshold([1, 1], [0.2, 0.8], "youden")
