"""Combining folds: statistics against hand-computed values, the pooled out-of-fold AUC."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from chest_xray.evaluation.cross_validation import fold_roc_figure, fold_statistics, pooled_auc


def test_fold_statistics_are_the_mean_sample_sd_min_and_max() -> None:
    per_fold = {
        "fold_1": {"test_accuracy": 0.80, "test_auc": 0.90},
        "fold_2": {"test_accuracy": 0.90, "test_auc": 0.95},
        "fold_3": {"test_accuracy": 0.70},  # no AUC here: test_auc is left out
    }
    for fold in per_fold.values():  # a fold's own interval: not averaged
        fold |= {"test_accuracy_ci_low": 0.5, "test_accuracy_ci_high": 0.9}
    statistics = fold_statistics(per_fold)

    assert set(statistics) == {"test_accuracy"}
    accuracy = statistics["test_accuracy"]
    assert accuracy["mean"] == pytest.approx(0.8)
    # sample sd of 0.8, 0.9, 0.7: sqrt((0 + 0.01 + 0.01) / 2) = 0.1
    assert accuracy["sd"] == pytest.approx(0.1)
    assert (accuracy["min"], accuracy["max"]) == (0.7, 0.9)


def test_equal_folds_have_no_spread_and_one_fold_has_sd_zero() -> None:
    same = {f"fold_{i}": {"m": 0.7} for i in range(1, 4)}
    assert fold_statistics(same)["m"]["sd"] == 0.0
    assert fold_statistics({"fold_1": {"m": 0.5}})["m"] == {
        "mean": 0.5,
        "sd": 0.0,
        "min": 0.5,
        "max": 0.5,
    }
    assert fold_statistics({}) == {}


def test_pooled_auc_ranks_every_out_of_fold_prediction_together() -> None:
    first = pd.DataFrame({"y_true": [0, 1, 1], "probability": [0.1, 0.8, 0.4]})
    second = pd.DataFrame({"y_true": [0, 0, 1], "probability": [0.5, 0.2, 0.9]})
    pooled = pd.concat([first, second])
    expected = roc_auc_score(pooled["y_true"], pooled["probability"])

    assert pooled_auc([first, second]) == pytest.approx(expected)
    assert pooled_auc([first.iloc[1:2]]) is None  # one class: undefined


def test_pooled_auc_of_a_multiclass_model_is_the_macro_one_vs_rest() -> None:
    table = pd.DataFrame(
        {
            "y_true": [0, 1, 2, 0, 1, 2],
            "probability_NORMAL": [0.7, 0.2, 0.1, 0.5, 0.3, 0.2],
            "probability_BACTERIA": [0.2, 0.6, 0.3, 0.3, 0.4, 0.3],
            "probability_VIRUS": [0.1, 0.2, 0.6, 0.2, 0.3, 0.5],
        }
    )
    scores = table[["probability_NORMAL", "probability_BACTERIA", "probability_VIRUS"]]
    expected = roc_auc_score(table["y_true"], scores, multi_class="ovr", average="macro")
    assert pooled_auc([table.iloc[:3], table.iloc[3:]]) == pytest.approx(expected)


def test_a_table_without_probabilities_is_an_error_naming_its_columns() -> None:
    with pytest.raises(ValueError, match="score"):
        pooled_auc([pd.DataFrame({"y_true": [0, 1], "score": [0.2, 0.7]})])


def test_the_roc_figure_has_one_curve_per_fold() -> None:
    tables = {
        "fold_1": pd.DataFrame({"y_true": [0, 1, 1, 0], "probability": [0.1, 0.8, 0.4, 0.3]}),
        "fold_2": pd.DataFrame({"y_true": [0, 0, 1, 1], "probability": [0.5, 0.2, 0.9, 0.6]}),
    }
    figure = fold_roc_figure(tables, {"fold_1": 0.75, "fold_2": None})
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert labels == ["chance", "fold_1 (AUC = 0.750)", "fold_2"]
    assert not math.isnan(figure.axes[0].get_lines()[1].get_xdata()[-1])
