"""Nodes of the cross_validation pipeline: fold TRAIN, prepare each fold, combine the folds.

Each fold trains and evaluates with the training and evaluation pipelines' own
nodes (``pipeline.py``); these nodes only make the folds and read their results.
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from chest_xray.data.folds import assign_folds as fold_table
from chest_xray.data.folds import fold_manifest, fold_name
from chest_xray.evaluation.cross_validation import fold_roc_figure, fold_statistics, pooled_auc
from chest_xray.evaluation.metrics import flat_metrics
from chest_xray.params import CrossValidationParams, SplitParams, TrainingParams

logger = logging.getLogger(__name__)


def assign_folds(
    split_manifest: pd.DataFrame,
    preprocessing_log: pd.DataFrame,
    params: CrossValidationParams,
) -> pd.DataFrame:
    """Every TRAIN image with its fold: stratified by label, grouped by patient and by
    exact copies (the source digests of ``preprocessing_log``), seeded."""
    ok = preprocessing_log[preprocessing_log["status"] == "ok"]
    folds = fold_table(
        split_manifest,
        folds=params.folds,
        seed=params.seed,
        digests=ok.set_index("image_id")["source_sha256"],
    )
    table = folds.groupby(["fold", "label"]).size().unstack(fill_value=0)
    logger.info(
        "%d folds of TRAIN (seed %d, %d images, %d patients):\n%s",
        params.folds,
        params.seed,
        len(folds),
        folds["patient_id"].nunique(),
        table,
    )
    return folds


def prepare_fold(
    cv_folds: pd.DataFrame,
    split_manifest: pd.DataFrame,
    split: SplitParams,
    training: TrainingParams,
    *,
    fold: int,
) -> tuple[pd.DataFrame, TrainingParams]:
    """Fold ``fold``'s split manifest (held-out fold = ``test``; the rest split into
    train / validation by patient) and its training parameters.

    The parameters differ from ``training`` in one field: the checkpoint folder is
    the fold's own (``<checkpoint_dir>/cross_validation/fold_<i>``), so folds run at
    the same time (a parallel runner, an orchestrator) never take over each other's.
    """
    folds_in_table = int(cv_folds["fold"].max()) if len(cv_folds) else 0
    if fold > folds_in_table:
        raise ValueError(
            f"cv_folds has {folds_in_table} folds but the pipeline has a {fold_name(fold)}: "
            "cv_folds was made with another cross_validation.folds; run assign_folds again "
            "(kedro run --pipelines=cross_validation without --namespaces)"
        )
    manifest = fold_manifest(
        split_manifest,
        cv_folds,
        fold,
        validation_fraction=split.validation_fraction,
        seed=split.seed,
    )
    checkpoint_dir = PurePosixPath(training.checkpoint_dir) / "cross_validation" / fold_name(fold)
    counts = manifest["split"].value_counts()
    logger.info(
        "%s: train %d, validation %d, held out %d",
        fold_name(fold),
        counts.get("train", 0),
        counts.get("validation", 0),
        counts.get("test", 0),
    )
    return manifest, training.model_copy(update={"checkpoint_dir": str(checkpoint_dir)})


def _folds(results: tuple[Any, ...]) -> tuple[list[str], list[Any], list[pd.DataFrame]]:
    """(names, reports, out-of-fold prediction tables) from ``k`` reports then ``k`` tables."""
    if len(results) % 2:
        raise TypeError("expected the folds' test_metrics, then as many test_predictions")
    k = len(results) // 2
    return [fold_name(i) for i in range(1, k + 1)], list(results[:k]), list(results[k:])


def aggregate_folds(*fold_results: Any) -> tuple[dict[str, Any], pd.DataFrame]:
    """The cross-validation summary and one row of metrics per fold.

    Inputs: ``fold_1.test_metrics`` ... ``fold_k.test_metrics``, then
    ``fold_1.test_predictions`` ... ``fold_k.test_predictions``. Per metric: mean,
    sample standard deviation, min and max over the folds; and the ROC AUC of all
    out-of-fold predictions pooled.
    """
    names, reports, predictions = _folds(fold_results)
    per_fold = {name: flat_metrics(report) for name, report in zip(names, reports, strict=True)}
    n_pooled = sum(len(table) for table in predictions)
    statistics = fold_statistics(per_fold)
    summary_auc = pooled_auc(predictions)
    summary: dict[str, Any] = {
        "folds": len(names),
        "per_fold": per_fold,
        "statistics": statistics,
        "pooled_out_of_fold": {"n": n_pooled, "auc": summary_auc},
    }
    rows = pd.DataFrame.from_dict(per_fold, orient="index").rename_axis("fold").reset_index()
    rows.insert(1, "n_test", [len(table) for table in predictions])
    for metric in ("test_accuracy", "test_auc", "test_macro_f1"):
        if metric in statistics:
            s = statistics[metric]
            logger.info(
                "Cross-validation %s: mean %.4f, sd %.4f (min %.4f, max %.4f) over %d folds",
                metric,
                s["mean"],
                s["sd"],
                s["min"],
                s["max"],
                len(names),
            )
    logger.info("Pooled out-of-fold AUC: %s (n=%d)", summary_auc, n_pooled)
    return summary, rows


def plot_fold_roc_curves(*fold_results: Any) -> Figure:
    """The ROC curve of each fold on its held-out images (inputs as ``aggregate_folds``)."""
    names, reports, predictions = _folds(fold_results)
    aucs = {name: report["test"].get("auc") for name, report in zip(names, reports, strict=True)}
    return fold_roc_figure(dict(zip(names, predictions, strict=True)), aucs)
