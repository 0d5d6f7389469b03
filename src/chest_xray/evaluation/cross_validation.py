"""What a cross-validation says: per-metric statistics over the folds, the pooled
out-of-fold AUC, and the folds' ROC curves.

Each fold is scored on its own held-out images by the evaluation report
(``metrics.evaluation_report``); this module only combines the folds' figures.
The standard deviation is the sample one (``ddof=1``): the folds are a sample of
the splits the same recipe could have met. The pooled AUC ranks every TRAIN image
by the probability the model that did not see it gave it; the folds' models are
different, so it mixes their calibrations (it is usually a little below the mean
of the per-fold AUCs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import fmean, stdev

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score, roc_curve

from chest_xray.data.figures import message_figure
from chest_xray.evaluation.plots import finish_roc_axes, roc_canvas

MULTICLASS_PREFIX = "probability_"  # one column per class in a multi-class prediction table
INTERVAL_SUFFIXES = ("_ci_low", "_ci_high")  # a fold's bootstrap bounds (evaluation.metrics)


def fold_statistics(per_fold: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """``metric -> {mean, sd, min, max}`` over the folds, for the metrics every fold has.

    A metric missing from some fold (e.g. an AUC undefined there) is left out
    rather than averaged over fewer folds, and so are the bounds of a fold's bootstrap
    interval (``*_ci_low``/``*_ci_high``: an average of bounds is no interval; the
    folds' spread is). ``sd`` is 0.0 for a single fold.
    """
    folds = list(per_fold.values())
    if not folds:
        return {}
    common = {
        metric
        for metric in set(folds[0]).intersection(*folds[1:])
        if not metric.endswith(INTERVAL_SUFFIXES)
    }
    result = {}
    for metric in sorted(common):
        values = [float(fold[metric]) for fold in folds]
        result[metric] = {  # statistics.stdev is exact: equal folds give 0.0, not 1e-16
            "mean": fmean(values),
            "sd": stdev(values) if len(values) > 1 else 0.0,
            "min": min(values),
            "max": max(values),
        }
    return result


def pooled_auc(predictions: Sequence[pd.DataFrame]) -> float | None:
    """ROC AUC of the out-of-fold predictions of all folds together.

    Binary tables (``y_true``, ``probability``) give the AUC of the positive class;
    multi-class tables (``y_true`` = class index, ``probability_<class>`` columns)
    the macro one-vs-rest AUC. None when the pooled labels hold a single class.
    """
    pooled = pd.concat(list(predictions), ignore_index=True)
    if pooled.empty or pooled["y_true"].nunique() < 2:
        return None
    y = pooled["y_true"].to_numpy(int)
    if "probability" in pooled:
        return float(roc_auc_score(y, pooled["probability"].to_numpy(float)))
    columns = [column for column in pooled.columns if column.startswith(MULTICLASS_PREFIX)]
    if not columns:
        raise ValueError(
            "A prediction table has neither a 'probability' column nor 'probability_<class>' "
            f"columns (it has {list(pooled.columns)})"
        )
    scores = pooled[columns].to_numpy(float)
    if pooled["y_true"].nunique() < len(columns):
        return None  # a class absent from every held-out fold: no one-vs-rest AUC for it
    return float(roc_auc_score(y, scores, multi_class="ovr", average="macro"))


def fold_roc_figure(
    predictions: Mapping[str, pd.DataFrame], aucs: Mapping[str, float | None]
) -> Figure:
    """One ROC curve per fold on its held-out images (binary models)."""
    if not predictions or any("probability" not in table for table in predictions.values()):
        return message_figure(
            "Cross-validation ROC curves",
            "ROC curves are drawn for binary models\n(see the per-class AUCs in the summary)",
        )
    fig, ax = roc_canvas()
    for name, table in predictions.items():
        y = table["y_true"].to_numpy(int)
        if np.unique(y).size < 2:
            continue
        fpr, tpr, _ = roc_curve(y, table["probability"].to_numpy(float), pos_label=1)
        auc = aucs.get(name)
        label = name if auc is None else f"{name} (AUC = {auc:.3f})"
        ax.plot(fpr, tpr, linewidth=1.5, label=label)
    finish_roc_axes(ax, "ROC curve of each fold on its held-out images")
    return fig
