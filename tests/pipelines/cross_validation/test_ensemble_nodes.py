"""The fold ensemble's evaluation: its threshold chosen on the pooled out-of-fold
predictions, and a report that says it skipped when there is no test image."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chest_xray.evaluation.metrics import evaluation_report, flat_metrics
from chest_xray.params import EvaluationParams, TrainingParams
from chest_xray.pipelines.cross_validation.nodes import evaluate_fold_ensemble
from chest_xray.pipelines.evaluation.nodes import PREDICTION_COLUMNS

MANIFEST = pd.DataFrame({"image_id": ["a", "b"], "label": ["NORMAL", "PNEUMONIA"]})


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return pd.DataFrame(
        {
            "image_id": [f"{seed}-{i}" for i in range(n)],
            "label": np.where(y == 1, "PNEUMONIA", "NORMAL"),
            "y_true": y,
            "probability": np.clip(0.3 * y + rng.uniform(0, 0.7, n), 0, 1),
        }
    )


def test_the_threshold_is_chosen_on_all_out_of_fold_predictions_pooled() -> None:
    folds = [_table(40, 1), _table(35, 2), _table(45, 3)]
    ensemble = _table(50, 4)
    ensemble["probability_fold_1"] = ensemble["probability"] ** 2
    ensemble["probability_fold_2"] = 1 - ensemble["probability"]
    params = EvaluationParams(validation_threshold="youden")
    report = evaluate_fold_ensemble(ensemble, MANIFEST, TrainingParams(), params, *folds)

    pooled = pd.concat(folds)
    expected = evaluation_report(
        ensemble["y_true"], ensemble["probability"], pooled["y_true"], pooled["probability"], params
    )
    assert report["validation"]["n"] == 120
    assert report["validation"]["chosen_threshold"] == expected["validation"]["chosen_threshold"]
    assert report["test"]["at_validation_threshold"] == expected["test"]["at_validation_threshold"]
    assert report["ensemble"]["members"] == 3
    assert report["ensemble"]["validation"] == "pooled out-of-fold predictions"
    # Each member beside the ensemble, on the same images: a squared score ranks the same,
    # a reversed one the other way round.
    auc = report["test"]["auc"]
    assert report["ensemble"]["member_test_auc"] == [pytest.approx(auc), pytest.approx(1 - auc)]
    y, p = ensemble["y_true"], ensemble["probability"]
    assert report["ensemble"]["member_test_accuracy"] == [
        pytest.approx(((p**2 >= 0.5) == y).mean()),
        pytest.approx(((1 - p >= 0.5) == y).mean()),
    ]


def test_no_test_image_is_a_skipped_report_not_a_failed_cross_validation() -> None:
    empty = pd.DataFrame(columns=PREDICTION_COLUMNS)
    report = evaluate_fold_ensemble(
        empty, MANIFEST, TrainingParams(), EvaluationParams(), _table(10, 1), _table(10, 2)
    )
    assert "test split is empty" in report["skipped"]
    assert flat_metrics(report) == {}
