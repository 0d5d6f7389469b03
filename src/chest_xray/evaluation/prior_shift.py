"""Prior shift: probabilities re-weighted from the training prevalence to a stated one.

The official TEST split has a smaller share of PNEUMONIA than TRAIN; accuracy, precision,
F1 and any threshold move with that share even when the classifier does not change.
``target_prevalence`` (``EvaluationParams``) re-weights the predicted probabilities from
the training prevalence to a stated one by Bayes' rule (Saerens, Latinne & Decaestecker
2002, "Adjusting the outputs of a classifier to new a priori probabilities") before any
threshold is applied or chosen. The served model applies the same shift
(``inference``), so this module is the one place its arithmetic lives.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chest_xray.evaluation.arrays import ArrayLike, as_probabilities, column_to_vector


def prevalence(y_true: ArrayLike) -> float:
    """Share of positive (label 1) cases; ``ValueError`` on empty input."""
    y = column_to_vector(np.asarray(y_true))
    if y.size == 0:
        raise ValueError("prevalence needs at least one label")
    return float(np.mean(y == 1))


def prior_shift(prob: ArrayLike, source: float, target: float) -> np.ndarray:
    """Probabilities of a model trained at prevalence ``source``, re-weighted to ``target``.

    Bayes' rule with the class-conditional densities held fixed (Saerens et al.
    2002): ``p' = p*t/s / (p*t/s + (1-p)*(1-t)/(1-s))``, i.e. the log-odds move
    by ``logit(t) - logit(s)``. The map is strictly increasing, so the ranking
    of cases, the ROC curve and the AUC do not change; what changes is which
    side of a given threshold a case falls on (``p = s`` becomes ``p' = t``).
    Both prevalences must be strictly between 0 and 1.
    """
    for name, value in (("source", source), ("target", target)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"prior_shift needs 0 < {name} < 1, got {value}")
    p = as_probabilities(prob)
    positive = p * (target / source)
    negative = (1.0 - p) * ((1.0 - target) / (1.0 - source))
    return positive / (positive + negative)


def threshold_before_shift(threshold: float, shift: tuple[float, float] | None) -> float:
    """The threshold on the model's own probabilities equivalent to ``threshold`` on
    probabilities shifted by ``shift`` = (source, target): the inverse shift, since
    ``prior_shift`` is strictly increasing. ``threshold`` itself when there is no shift."""
    if shift is None:
        return threshold
    source, target = shift
    return float(prior_shift(np.array([threshold]), target, source)[0])


def shifted_probabilities(prob: ArrayLike, report: dict[str, Any]) -> np.ndarray:
    """``prob`` as the report's thresholds see it: shifted when the report records a shift.

    For figures drawn from raw predictions (e.g. operating points on the ROC
    curve), so that a threshold from the report lands where the report put it.
    """
    shift = report.get("prior_shift")
    if shift is None:
        return as_probabilities(prob)
    return prior_shift(prob, shift["from"], shift["to"])


def shift_source(train_prevalence: float | None, y_val: np.ndarray) -> float:
    """The training prevalence, or the validation labels' one when it is not given.

    The validation split is carved from TRAIN, so its prevalence stands in for
    TRAIN's (exactly so when the split is stratified by label).
    """
    if train_prevalence is not None:
        return train_prevalence
    if y_val.size == 0:
        raise ValueError(
            "target_prevalence needs the training prevalence, or a validation split to take it from"
        )
    return prevalence(y_val)
