"""The packaged model returns calibrated probabilities and makes the report's decisions."""

from __future__ import annotations

import numpy as np
import pytest

from chest_xray.evaluation.calibration import apply_temperature
from chest_xray.inference.classifier import Classifier
from chest_xray.inference.settings import calibrated_threshold, settings_from_evaluation
from chest_xray.params import EvaluationParams, PreprocessingParams
from tests.inference.conftest import SIZE, tiny_settings

REPORT = {
    "test": {"at_validation_threshold": {"threshold": 0.71, "strategy": "youden"}},
    "validation": {"auc": 0.97},
    "calibration": {"temperature": 0.8},
}


@pytest.mark.parametrize("shift", [None, (0.74, 0.625)])
def test_the_calibrated_threshold_makes_the_same_decisions(
    shift: tuple[float, float] | None,
) -> None:
    from chest_xray.evaluation.prior_shift import prior_shift

    p = np.linspace(0.001, 0.999, 2001)
    before = p if shift is None else prior_shift(p, *shift)
    after = apply_temperature(p, 0.8)
    after = after if shift is None else prior_shift(after, *shift)
    threshold = calibrated_threshold(0.71, 0.8, shift)
    np.testing.assert_array_equal(before >= 0.71, after >= threshold)
    assert threshold != pytest.approx(0.71, abs=1e-3)


def test_the_package_carries_the_reports_temperature_unless_told_not_to() -> None:
    preprocessing = PreprocessingParams(image_size=(150, 150))
    settings = settings_from_evaluation(REPORT, preprocessing, EvaluationParams())
    assert settings.temperature == 0.8
    assert settings.threshold == pytest.approx(calibrated_threshold(0.71, 0.8, None))
    assert settings.threshold_source == "youden on validation, in calibrated units"
    raw = settings_from_evaluation(REPORT, preprocessing, EvaluationParams(calibration="none"))
    assert (raw.temperature, raw.threshold) == (1.0, 0.71)
    older = {key: value for key, value in REPORT.items() if key != "calibration"}
    assert settings_from_evaluation(older, preprocessing, EvaluationParams()).temperature == 1.0


def test_the_classifier_returns_calibrated_probabilities_with_the_same_labels(
    classifier: Classifier,
) -> None:
    images = np.random.default_rng(5).integers(0, 256, (16, *SIZE, 1), dtype=np.uint8)
    plain = Classifier(classifier.model, tiny_settings(threshold=0.55), "x")
    raw = plain.probabilities(images)
    threshold = calibrated_threshold(0.55, 0.5, None)
    calibrated = Classifier(
        classifier.model, tiny_settings(threshold=threshold, temperature=0.5), "x"
    )
    prob = calibrated.probabilities(images)
    np.testing.assert_allclose(prob, apply_temperature(raw, 0.5), atol=1e-6)
    assert calibrated.labels(prob) == plain.labels(raw)
