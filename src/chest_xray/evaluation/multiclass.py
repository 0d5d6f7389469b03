"""Metrics of a multiclass classifier (NORMAL / BACTERIA / VIRUS [/ COVID-19]).

Labels are class indices and ``prob`` an (N, K) matrix of class probabilities;
the predicted class is the most probable one (there is no threshold to tune).
Every number comes from scikit-learn; results are plain Python types, for JSON
and MLflow. Macro averages are over the classes present in the true labels: a
class with no test image has no sensitivity or AUC, and counting it as 0 would
say something about the test set, not the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

# Per-class keys, in the order they are flattened for MLflow.
PER_CLASS_KEYS: tuple[str, ...] = ("sensitivity", "specificity", "precision", "f1", "auc")
# Overall keys, in the order they are flattened for MLflow.
OVERALL_KEYS: tuple[str, ...] = (
    "accuracy",
    "balanced_accuracy",
    "macro_sensitivity",
    "macro_precision",
    "macro_f1",
    "macro_auc",
)


def as_arrays(
    y_true: Sequence[int] | Sequence[float] | np.ndarray, prob: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Validate once here, so a shape or label mix-up fails loudly, not as a bad metric."""
    y = np.asarray(y_true)
    p = np.asarray(prob, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != n_classes or y.shape != (p.shape[0],):
        raise ValueError(
            f"expected {n_classes} class probabilities per label, got y_true {y.shape} "
            f"and prob {p.shape}"
        )
    if y.size and not np.isin(y, np.arange(n_classes)).all():
        raise ValueError(f"y_true must hold class indices 0..{n_classes - 1}")
    if p.size and not (np.isfinite(p).all() and p.min() >= 0.0 and p.max() <= 1.0):
        raise ValueError("prob must be probabilities in [0, 1]")
    return y.astype(np.int64), p


def multiclass_metrics(
    y_true: Sequence[int] | Sequence[float] | np.ndarray, prob: np.ndarray, classes: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro averages, per-class rates and AUCs, and the K x K confusion matrix.

    Per class (one vs the rest): ``sensitivity`` (recall), ``specificity``,
    ``precision``, ``f1`` (0.0 where the denominator is 0, scikit-learn's
    ``zero_division=0``), ``auc`` (None for a class absent from ``y_true``) and
    ``support``. ``balanced_accuracy`` is the macro sensitivity.
    ``confusion_matrix`` has actual classes on rows, predicted on columns, in
    ``classes`` order.
    """
    y, p = as_arrays(y_true, prob, len(classes))
    if y.size == 0:
        raise ValueError("multiclass_metrics needs at least one sample")
    labels = list(range(len(classes)))
    pred = p.argmax(axis=1)
    matrix = confusion_matrix(y, pred, labels=labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, labels=labels, zero_division=0
    )
    negatives = matrix.sum() - matrix.sum(axis=1)
    false_positives = matrix.sum(axis=0) - np.diag(matrix)
    present = [k for k in labels if support[k] > 0]
    per_class = {}
    for k, name in enumerate(classes):
        true_negatives = negatives[k] - false_positives[k]
        per_class[name] = {
            "sensitivity": float(recall[k]),
            "specificity": float(true_negatives / negatives[k]) if negatives[k] else 0.0,
            "precision": float(precision[k]),
            "f1": float(f1[k]),
            "auc": one_vs_rest_auc(y, p, k),
            "support": int(support[k]),
        }
    aucs = [per_class[classes[k]]["auc"] for k in present]
    defined = [value for value in aucs if value is not None]
    macro_auc = float(np.mean(defined)) if defined and len(defined) == len(aucs) else None
    return {
        "n": int(y.size),
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": float(np.mean(recall[present])),
        "macro_sensitivity": float(np.mean(recall[present])),
        "macro_precision": float(np.mean(precision[present])),
        "macro_f1": float(np.mean(f1[present])),
        "macro_auc": macro_auc,
        "classes_in_test": [classes[k] for k in present],
        "per_class": per_class,
        "confusion_matrix": matrix.astype(int).tolist(),
    }


def one_vs_rest_auc(y: np.ndarray, prob: np.ndarray, k: int) -> float | None:
    """ROC AUC of class ``k``'s probability for "is class k"; None unless both sides exist."""
    is_k = y == k
    if is_k.all() or not is_k.any():
        return None
    return float(roc_auc_score(is_k, prob[:, k]))
