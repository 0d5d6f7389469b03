"""Nodes of the cross_validation pipeline: fold TRAIN, prepare each fold, combine the folds.

Each fold trains and evaluates with the training and evaluation pipelines' own
nodes (``pipeline.py``); these nodes only make the folds and read their results.
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from chest_xray.data.folds import assign_folds as fold_table
from chest_xray.data.folds import fold_manifest, fold_name
from chest_xray.data.params import CrossValidationParams, SplitParams
from chest_xray.data.partitions import PartitionLoaders
from chest_xray.evaluation.cross_validation import fold_roc_figure, fold_statistics, pooled_auc
from chest_xray.evaluation.metrics import binary_metrics, flat_metrics, roc_auc
from chest_xray.evaluation.params import EvaluationParams
from chest_xray.modeling import KerasModel
from chest_xray.modeling.ensemble import member_probabilities
from chest_xray.modeling.inputs import load_image_array, split_rows
from chest_xray.modeling.params import TrainingParams
from chest_xray.pipelines.evaluation.nodes import evaluate, prediction_columns, prediction_table

logger = logging.getLogger(__name__)

# A fold ensemble's predictions table: each member's probability, probability_fold_<i>.
MEMBER_COLUMN = "probability_fold_"


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


def predict_with_fold_models(
    processed_images: PartitionLoaders,
    split_manifest: pd.DataFrame,
    training: TrainingParams,
    evaluation: EvaluationParams,
    *models: KerasModel,
) -> pd.DataFrame:
    """The fold models as one classifier: their mean probability on every image of the
    data_processing test split (the official TEST in the Kaggle layout), averaged over
    ``evaluation.tta``'s views too when set. No fold model saw a test image.

    A binary table also keeps each member's probability (``probability_fold_<i>``), so
    the report can set the ensemble beside its members on the same images.
    """
    rows = split_rows(split_manifest, "test")
    if rows.empty:
        logger.warning("The test split is empty: the fold ensemble scores nothing")
        return pd.DataFrame(columns=prediction_columns(training))
    images = load_image_array(processed_images, rows["image_id"], training.loader_threads)
    members = member_probabilities(models, images, training.micro_batch_size, evaluation.tta)
    table = prediction_table(rows, np.mean(members, axis=0), training)
    if training.task == "binary":
        for i, probability in enumerate(members, start=1):
            table[f"{MEMBER_COLUMN}{i}"] = probability
    logger.info("The ensemble of %d fold models scored %d test images", len(models), len(rows))
    return table


def evaluate_fold_ensemble(
    ensemble_predictions: pd.DataFrame,
    split_manifest: pd.DataFrame,
    training: TrainingParams,
    evaluation: EvaluationParams,
    *fold_test_predictions: pd.DataFrame,
) -> dict[str, Any]:
    """The fold ensemble's evaluation report on the test split (``evaluate``'s report).

    Its threshold (``evaluation.validation_threshold``) is chosen on the pooled
    out-of-fold predictions: every TRAIN image scored by the fold model that did not
    train on it, the nearest honest validation set an ensemble of all the folds has
    (each member's calibration, not the mean's: close, not equal). With no test image,
    the report says so (``skipped``) instead of failing a cross-validation whose folds
    are complete.
    """
    if ensemble_predictions.empty:
        return {"task": training.task, "skipped": "the test split is empty: nothing scored"}
    pooled = pd.concat(fold_test_predictions, ignore_index=True)
    report = evaluate(pooled, ensemble_predictions, split_manifest, training, evaluation)
    report["ensemble"] = {
        "members": len(fold_test_predictions),
        "validation": "pooled out-of-fold predictions",
        **_members_on_test(ensemble_predictions, evaluation.threshold),
    }
    return report


def _members_on_test(table: pd.DataFrame, threshold: float) -> dict[str, Any]:
    """Each member's test AUC and accuracy at the fixed threshold (binary tables)."""
    columns = [c for c in table.columns if c.startswith(MEMBER_COLUMN)]
    if not columns:
        return {}
    y = table["y_true"].to_numpy(int)
    return {
        "member_test_auc": [roc_auc(y, table[c].to_numpy(float)) for c in columns],
        "member_test_accuracy": [
            binary_metrics(y, table[c].to_numpy(float), threshold)["accuracy"] for c in columns
        ],
    }
