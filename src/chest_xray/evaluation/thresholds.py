"""The operating point chosen on the validation split: Youden, accuracy or equal error.

A threshold tuned on validation is tuned for TRAIN's share of PNEUMONIA (the validation
split is carved out of TRAIN), not TEST's. ``equal_error`` (``validation_threshold:
equal_error`` in ``EvaluationParams``) picks the threshold where sensitivity equals
specificity, a point defined by the two class-wise rates only, so it does not favour the
class that is common in TRAIN. Every rule breaks ties towards the highest threshold, so
the choice is deterministic.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.metrics import accuracy_score, roc_curve

from chest_xray.evaluation.arrays import ArrayLike, as_arrays, has_both_classes

ThresholdStrategy = Literal["youden", "accuracy", "equal_error"]


def _youden_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """Argmax of TPR - FPR; ``np.argmax`` keeps the first, i.e. highest, threshold on ties."""
    fpr, tpr, thresholds = roc_curve(y, p, pos_label=1, drop_intermediate=False)
    best = int(np.argmax(tpr - fpr))
    return float(min(thresholds[best], 1.0))  # thresholds[0] is +inf: "nothing positive"


def _equal_error_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """Argmin of |sensitivity - specificity| = |TPR + FPR - 1| over the ROC thresholds.

    The ROC curve is a staircase, so sensitivity rarely equals specificity
    exactly: this is the point closest to it. ``np.argmin`` keeps the first,
    i.e. highest, threshold on ties, matching the other rules.
    """
    fpr, tpr, thresholds = roc_curve(y, p, pos_label=1, drop_intermediate=False)
    best = int(np.argmin(np.abs(tpr + fpr - 1.0)))
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
    accuracy; ``equal_error`` makes sensitivity and specificity as equal as the
    validation ROC curve allows. Ties go to the highest threshold (fewest positive calls), so the
    choice is deterministic. Both classes must be present: with one class any
    threshold that calls everything that class is "optimal", which says nothing.
    """
    y, p = as_arrays(y_true, prob)
    if not has_both_classes(y):
        raise ValueError("choose_threshold needs both classes in y_true")
    if strategy == "youden":
        return _youden_threshold(y, p)
    if strategy == "accuracy":
        return _accuracy_threshold(y, p)
    if strategy == "equal_error":
        return _equal_error_threshold(y, p)
    raise ValueError(f"unknown threshold strategy: {strategy!r}")
