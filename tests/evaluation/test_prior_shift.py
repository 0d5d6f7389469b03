"""Prior shift: Bayes' rule worked out by hand, and its inverse on a threshold."""

from __future__ import annotations

import pytest

from chest_xray.evaluation.prior_shift import prevalence, prior_shift, threshold_before_shift


@pytest.mark.parametrize(
    ("prob", "source", "target", "expected"),
    [
        # s=3/4 -> t=1/2: odds x (1/3). 0.5 -> (1/3)/(1/3 + 1) = 1/4; p = s lands on t.
        ([0.0, 0.5, 0.75, 1.0], 0.75, 0.5, [0.0, 0.25, 0.5, 1.0]),
        # s=1/2 -> t=4/5: odds x 4. 0.2 -> 0.32/(0.32 + 0.32) = 1/2; 0.5 -> 4/5.
        ([0.2, 0.5], 0.5, 0.8, [0.5, 0.8]),
        ([0.1, 0.6], 0.3, 0.3, [0.1, 0.6]),  # same prevalence: unchanged
    ],
)
def test_prior_shift_matches_bayes_rule_by_hand(
    prob: list[float], source: float, target: float, expected: list[float]
) -> None:
    assert prior_shift(prob, source, target) == pytest.approx(expected)


@pytest.mark.parametrize(("source", "target"), [(0.0, 0.5), (0.5, 1.0), (1.2, 0.5)])
def test_prior_shift_needs_prevalences_strictly_inside_0_1(source: float, target: float) -> None:
    with pytest.raises(ValueError, match="0 < "):
        prior_shift([0.5], source, target)


def test_prevalence_is_the_positive_share() -> None:
    assert prevalence([1, 0, 1, 1]) == 0.75


def test_threshold_before_shift_is_the_inverse_shift() -> None:
    # 0.5 after a shift from 3/4 to 1/2 is 0.75 before it (the first case above, reversed).
    assert threshold_before_shift(0.5, (0.75, 0.5)) == pytest.approx(0.75)
    assert prior_shift([threshold_before_shift(0.3, (0.2, 0.6))], 0.2, 0.6) == pytest.approx([0.3])
    assert threshold_before_shift(0.4, None) == 0.4
