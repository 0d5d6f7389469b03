"""Metrics of a binary classifier from labels and predicted probabilities.

Labels are 0/1 with 1 (PNEUMONIA) the positive class, and ``prob`` is the
predicted probability of class 1; a case is called positive when
``prob >= threshold``. Every number comes from scikit-learn, and every result
is made of plain Python types so it can be written as JSON or logged as-is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from chest_xray.params import EvaluationParams

ArrayLike = Sequence[float] | np.ndarray
ThresholdStrategy = Literal["youden", "accuracy"]

# Keys of ``binary_metrics`` that are rates, in the order they are flattened.
RATE_KEYS: tuple[str, ...] = ("accuracy", "sensitivity", "specificity", "precision", "f1")


def _column_to_vector(values: np.ndarray) -> np.ndarray:
    """Accept Keras' ``(n, 1)`` predictions; any other 2-D shape is left to fail."""
    return values[:, 0] if values.ndim == 2 and values.shape[1] == 1 else values


def _as_arrays(y_true: ArrayLike, prob: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate once here so a shape or label mix-up fails loudly, not as a bad metric."""
    y = _column_to_vector(np.asarray(y_true))
    p = _column_to_vector(np.asarray(prob, dtype=np.float64))
    if y.ndim != 1 or p.ndim != 1 or y.shape != p.shape:
        raise ValueError(f"y_true and prob must be 1-D and equal length, got {y.shape}, {p.shape}")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must contain only 0 and 1")
    if p.size and not (np.isfinite(p).all() and p.min() >= 0.0 and p.max() <= 1.0):
        raise ValueError("prob must be probabilities in [0, 1]")
    return y.astype(np.int64), p


def _has_both_classes(y: np.ndarray) -> bool:
    return bool(np.unique(y).size == 2)


def binary_metrics(y_true: ArrayLike, prob: ArrayLike, threshold: float) -> dict[str, Any]:
    """Confusion matrix and rates at one operating point.

    A rate whose denominator is zero (e.g. specificity when no NORMAL case is
    present, precision when nothing is called positive) is reported as 0.0
    (scikit-learn's ``zero_division=0``) rather than NaN, so the dict stays valid
    JSON. Empty input raises ``ValueError``: there is no meaningful accuracy.
    """
    y, p = _as_arrays(y_true, prob)
    if y.size == 0:
        raise ValueError("binary_metrics needs at least one sample")
    pred = (p >= threshold).astype(np.int64)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    rates = {
        "accuracy": accuracy_score(y, pred),
        "sensitivity": recall_score(y, pred, pos_label=1, labels=[0, 1], zero_division=0),
        "specificity": recall_score(y, pred, pos_label=0, labels=[0, 1], zero_division=0),
        "precision": precision_score(y, pred, pos_label=1, labels=[0, 1], zero_division=0),
        "f1": f1_score(y, pred, pos_label=1, labels=[0, 1], zero_division=0),
    }
    return {
        **{key: float(value) for key, value in rates.items()},
        "threshold": float(threshold),
        "n": int(y.size),
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
    }


def roc_auc(y_true: ArrayLike, prob: ArrayLike) -> float | None:
    """ROC AUC, or None when it is undefined (empty input or a single class)."""
    y, p = _as_arrays(y_true, prob)
    if not _has_both_classes(y):
        return None
    return float(roc_auc_score(y, p))


def _youden_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """Argmax of TPR - FPR; ``np.argmax`` keeps the first, i.e. highest, threshold on ties."""
    fpr, tpr, thresholds = roc_curve(y, p, pos_label=1, drop_intermediate=False)
    best = int(np.argmax(tpr - fpr))
    return float(min(thresholds[best], 1.0))  # thresholds[0] is +inf: "nothing positive"


def _accuracy_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """Argmax of accuracy over every distinct split of the sorted probabilities.

    Candidates are 0.0 (all positive), midpoints between neighbouring distinct
    probabilities, and 1.0 (nothing positive, as Youden's clipped first
    threshold). Candidates are scanned from the highest down so ties keep the
    highest threshold, matching the Youden rule.
    """
    unique = np.unique(p)
    midpoints = (unique[:-1] + unique[1:]) / 2.0
    candidates = np.concatenate(([1.0], midpoints[::-1], [0.0]))
    scores = [accuracy_score(y, (p >= t).astype(np.int64)) for t in candidates]
    return float(candidates[int(np.argmax(scores))])


def choose_threshold(y_true: ArrayLike, prob: ArrayLike, strategy: ThresholdStrategy) -> float:
    """Pick an operating point on the validation split.

    ``youden`` maximises sensitivity + specificity - 1; ``accuracy`` maximises
    accuracy. Ties go to the highest threshold (fewest positive calls), so the
    choice is deterministic. Both classes must be present: with one class any
    threshold that calls everything that class is "optimal", which says nothing.
    """
    y, p = _as_arrays(y_true, prob)
    if not _has_both_classes(y):
        raise ValueError("choose_threshold needs both classes in y_true")
    if strategy == "youden":
        return _youden_threshold(y, p)
    if strategy == "accuracy":
        return _accuracy_threshold(y, p)
    raise ValueError(f"unknown threshold strategy: {strategy!r}")


def _validation_section(
    val_true: np.ndarray, val_prob: np.ndarray, params: EvaluationParams
) -> dict[str, Any]:
    """Validation metrics and the chosen threshold; all None when the split is empty."""
    if val_true.size == 0:
        return {"n": 0, "auc": None, "at_fixed_threshold": None, "chosen_threshold": None}
    strategy = params.validation_threshold
    chosen = (
        choose_threshold(val_true, val_prob, strategy)
        if strategy != "none" and _has_both_classes(val_true)
        else None
    )
    return {
        "n": int(val_true.size),
        "auc": roc_auc(val_true, val_prob),
        "at_fixed_threshold": binary_metrics(val_true, val_prob, params.threshold),
        "chosen_threshold": chosen,
    }


def evaluation_report(
    test_true: ArrayLike,
    test_prob: ArrayLike,
    val_true: ArrayLike,
    val_prob: ArrayLike,
    params: EvaluationParams,
) -> dict[str, Any]:
    """Test metrics at the fixed threshold and at the one chosen on validation.

    The threshold is chosen on validation only, so the tuned test numbers are
    an honest estimate. No threshold is chosen when the validation split is
    empty, has a single class, or ``params.validation_threshold`` is ``none``.
    """
    y_test, p_test = _as_arrays(test_true, test_prob)
    y_val, p_val = _as_arrays(val_true, val_prob)
    validation = _validation_section(y_val, p_val, params)
    chosen = validation["chosen_threshold"]
    tuned = (
        None
        if chosen is None
        else {**binary_metrics(y_test, p_test, chosen), "strategy": params.validation_threshold}
    )
    return {
        "positive_class": params.classes[1],
        "negative_class": params.classes[0],
        "test": {
            "n": int(y_test.size),
            "auc": roc_auc(y_test, p_test),
            "at_fixed_threshold": binary_metrics(y_test, p_test, params.threshold),
            "at_validation_threshold": tuned,
        },
        "validation": validation,
    }


def _flatten_point(prefix: str, point: dict[str, Any] | None) -> dict[str, float | None]:
    if point is None:
        return {}
    keys = (*RATE_KEYS, "threshold")
    return {f"{prefix}_{key}": point[key] for key in keys}


def flat_metrics(report: dict[str, Any]) -> dict[str, float]:
    """One level of ``name -> float`` for a metrics logger (e.g. MLflow); None is dropped.

    ``test_*`` are at the fixed threshold, ``test_tuned_*`` at the threshold
    chosen on validation, ``validation_*`` are the final model on the validation
    split at the fixed threshold. (Keras' per-epoch curves are ``val_*``: a
    different series, so a different name.)
    """
    test, validation = report["test"], report["validation"]
    flat: dict[str, float | None] = {
        **_flatten_point("test", test["at_fixed_threshold"]),
        "test_auc": test["auc"],
        **_flatten_point("test_tuned", test["at_validation_threshold"]),
        **{
            key: value
            for key, value in _flatten_point("validation", validation["at_fixed_threshold"]).items()
            if key != "validation_threshold"
        },
        "validation_auc": validation["auc"],
    }
    return {key: float(value) for key, value in flat.items() if value is not None}
