"""Calibration metrics and temperature scaling (chest_xray.evaluation.calibration)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, logit, softmax
from sklearn.metrics import brier_score_loss

from chest_xray.evaluation.calibration import (
    apply_temperature,
    apply_temperature_multiclass,
    binary_calibration,
    calibration_section,
    fit_temperature,
    fit_temperature_multiclass,
    multiclass_calibration,
)


def _calibrated_sample(n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn with exactly the stated probabilities: calibrated by construction."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.01, 0.99, n)
    return (rng.uniform(size=n) < p).astype(int), p


def test_ece_by_hand_on_four_cases() -> None:
    # bins: 0.1 -> |0 - 0.1| (1/4); two 0.9 -> |1 - 0.9| (2/4); 0.6 -> |1 - 0.6| (1/4)
    report = binary_calibration([0, 1, 1, 1], [0.1, 0.9, 0.9, 0.6])
    assert report["ece"] == pytest.approx(0.25 * 0.1 + 0.5 * 0.1 + 0.25 * 0.4)
    assert report["brier"] == pytest.approx(brier_score_loss([0, 1, 1, 1], [0.1, 0.9, 0.9, 0.6]))
    assert report["reliability"]["count"] == [1, 1, 2]
    assert report["binning"].startswith("10 equal-width bins")


def test_a_calibrated_model_has_a_small_ece_and_an_overconfident_one_a_large_ece() -> None:
    y, p = _calibrated_sample()
    overconfident = expit(3.0 * logit(p))
    assert binary_calibration(y, p)["ece"] < 0.02
    assert binary_calibration(y, overconfident)["ece"] > 0.08
    assert binary_calibration(y, overconfident)["log_loss"] > binary_calibration(y, p)["log_loss"]


def test_temperature_undoes_overconfidence_without_changing_ranking_or_decisions() -> None:
    y, p = _calibrated_sample()
    overconfident = expit(3.0 * logit(p))
    temperature = fit_temperature(y, overconfident)
    assert temperature == pytest.approx(3.0, rel=0.1)
    repaired = apply_temperature(overconfident, temperature)
    assert binary_calibration(y, repaired)["ece"] < 0.02
    np.testing.assert_array_equal(np.argsort(repaired), np.argsort(overconfident))
    np.testing.assert_array_equal(repaired >= 0.5, overconfident >= 0.5)


def test_a_calibrated_model_keeps_a_temperature_near_one() -> None:
    y, p = _calibrated_sample(seed=1)
    assert fit_temperature(y, p) == pytest.approx(1.0, abs=0.1)
    assert fit_temperature([1, 1, 1], [0.2, 0.7, 0.9]) == 1.0  # one class: nothing to learn


def test_multiclass_top_label_ece_and_temperature() -> None:
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(6000, 3)) * 2.0
    p = softmax(logits, axis=1)
    y = np.array([rng.choice(3, p=row) for row in p])
    sharp = softmax(logits * 2.5, axis=1)
    assert multiclass_calibration(y, p)["ece"] < 0.03
    assert multiclass_calibration(y, sharp)["ece"] > 0.08
    temperature = fit_temperature_multiclass(y, sharp)
    assert temperature == pytest.approx(2.5, rel=0.1)
    repaired = apply_temperature_multiclass(sharp, temperature)
    assert multiclass_calibration(y, repaired)["ece"] < 0.03
    np.testing.assert_array_equal(repaired.argmax(axis=1), sharp.argmax(axis=1))


def test_the_section_fits_on_validation_only() -> None:
    y, p = _calibrated_sample(n=4000)
    overconfident = expit(3.0 * logit(p))
    val, test = slice(0, 2000), slice(2000, None)
    section = calibration_section(y[test], overconfident[test], y[val], overconfident[val])
    flipped = calibration_section(1 - y[test], overconfident[test], y[val], overconfident[val])
    assert section["temperature"] == flipped["temperature"]  # test labels never used
    assert section["test_calibrated"]["ece"] < section["test"]["ece"]
    assert section["validation_calibrated"]["log_loss"] < section["validation"]["log_loss"]


def test_without_validation_nothing_is_fitted() -> None:
    section = calibration_section([0, 1], [0.2, 0.9], [], [])
    assert section["temperature"] == 1.0
    assert "validation" not in section
    assert binary_calibration([], [])["n"] == 0


def test_mismatched_lengths_and_labels_are_refused() -> None:
    with pytest.raises(ValueError, match="3 labels but 2 probabilities"):
        binary_calibration([0, 1, 1], [0.2, 0.4])
    with pytest.raises(ValueError, match="labels 0 and 1"):
        binary_calibration([0, 2], [0.2, 0.4])


def test_the_reliability_diagram_draws_both_curves_with_their_ece() -> None:
    from chest_xray.evaluation.plots import reliability_diagram_figure

    y, p = _calibrated_sample(n=2000)
    overconfident = expit(3.0 * logit(p))
    section = calibration_section(y[:1000], overconfident[:1000], y[1000:], overconfident[1000:])
    fig = reliability_diagram_figure(section)
    top, bottom = fig.axes
    labels = [line.get_label() for line in top.get_lines()]
    assert labels[0] == "perfect calibration"
    assert labels[1] == f"model (ECE {section['test']['ece']:.3f})"
    assert labels[2].startswith(f"temperature {section['temperature']:.2f} (ECE ")
    assert sum(patch.get_height() for patch in bottom.patches) == 1000  # every test image
    empty = reliability_diagram_figure({"test": {"n": 0}})
    assert [t.get_text() for ax in empty.axes for t in ax.texts] == ["No test predictions to draw"]
