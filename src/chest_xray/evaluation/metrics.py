"""Metrics of a binary classifier from labels and predicted probabilities, and the report.

Labels are 0/1 with 1 (PNEUMONIA) the positive class, and ``prob`` is the
predicted probability of class 1; a case is called positive when
``prob >= threshold``. Every number comes from scikit-learn, and every result
is made of plain Python types so it can be written as JSON or logged as-is.

Why some of it exists: prevalence shift. The official TEST split has a
smaller share of PNEUMONIA than TRAIN, and the validation split is carved out
of TRAIN, so it has TRAIN's share. Accuracy, precision and F1 move with that
share even when the classifier does not change, and a threshold tuned on
validation is tuned for TRAIN's share, not TEST's. Three levers, all off by
default (``EvaluationParams``), make the numbers robust to that shift:

* ``balanced_accuracy`` (mean of sensitivity and specificity) is reported at
  every operating point: unlike accuracy it does not depend on prevalence.
* ``validation_threshold: equal_error`` picks the threshold where sensitivity
  equals specificity on validation (``thresholds``, with the other rules).
* ``target_prevalence`` re-weights the predicted probabilities from the
  training prevalence to a stated one by Bayes' rule (``prior_shift``),
  before any threshold is applied or chosen.

This module scores one operating point, assembles the evaluation report from the
two (test at the fixed and the chosen threshold, validation) and flattens it for a
metrics logger.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from chest_xray.evaluation.arrays import ArrayLike, as_arrays, has_both_classes
from chest_xray.evaluation.bootstrap import (
    Statistic,
    binary_statistics,
    intervals,
    multiclass_statistics,
)
from chest_xray.evaluation.multiclass import OVERALL_KEYS, PER_CLASS_KEYS, multiclass_metrics
from chest_xray.evaluation.params import BootstrapParams, EvaluationParams
from chest_xray.evaluation.prior_shift import prior_shift, shift_source
from chest_xray.evaluation.thresholds import choose_threshold

# Keys of ``binary_metrics`` that are rates, in the order they are flattened.
RATE_KEYS: tuple[str, ...] = (
    "accuracy",
    "balanced_accuracy",
    "sensitivity",
    "specificity",
    "precision",
    "f1",
)


def binary_metrics(y_true: ArrayLike, prob: ArrayLike, threshold: float) -> dict[str, Any]:
    """Confusion matrix and rates at one operating point.

    A rate whose denominator is zero (e.g. specificity when no NORMAL case is
    present, precision when nothing is called positive) is reported as 0.0
    (scikit-learn's ``zero_division=0``) rather than NaN, so the dict stays valid
    JSON. Empty input raises ``ValueError``: there is no meaningful accuracy.

    ``balanced_accuracy`` is the mean of sensitivity and specificity as reported
    here (so with one class absent, its 0.0 counts), not scikit-learn's
    ``balanced_accuracy_score``, which averages over the classes present only.
    """
    y, p = as_arrays(y_true, prob)
    if y.size == 0:
        raise ValueError("binary_metrics needs at least one sample")
    pred = (p >= threshold).astype(np.int64)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    sensitivity = recall_score(y, pred, pos_label=1, labels=[0, 1], zero_division=0)
    specificity = recall_score(y, pred, pos_label=0, labels=[0, 1], zero_division=0)
    rates = {
        "accuracy": accuracy_score(y, pred),
        "balanced_accuracy": (float(sensitivity) + float(specificity)) / 2.0,
        "sensitivity": sensitivity,
        "specificity": specificity,
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
    y, p = as_arrays(y_true, prob)
    if not has_both_classes(y):
        return None
    return float(roc_auc_score(y, p))


def _validation_section(
    val_true: np.ndarray, val_prob: np.ndarray, params: EvaluationParams
) -> dict[str, Any]:
    """Validation metrics and the chosen threshold; all None when the split is empty."""
    if val_true.size == 0:
        return {"n": 0, "auc": None, "at_fixed_threshold": None, "chosen_threshold": None}
    strategy = params.validation_threshold
    chosen = (
        choose_threshold(val_true, val_prob, strategy)
        if strategy != "none" and has_both_classes(val_true)
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
    *,
    train_prevalence: float | None = None,
) -> dict[str, Any]:
    """Test metrics at the fixed threshold and at the one chosen on validation.

    The threshold is chosen on validation only, so the tuned test numbers are
    an honest estimate. No threshold is chosen when the validation split is
    empty, has a single class, or ``params.validation_threshold`` is ``none``.

    With ``params.target_prevalence`` set, validation and test probabilities
    are first shifted from ``train_prevalence`` (the share of PNEUMONIA the
    model was trained on; when None, the validation labels' share, see
    ``prior_shift.shift_source``) to the target, and the report records
    ``prior_shift: {from, to}``. Every threshold then applies to the shifted
    probabilities. Since the shift keeps the ranking, it moves the fixed
    threshold's operating point (0.5 becomes the Bayes decision at the target
    prevalence) but not the validation rules' choice of cases: ``youden`` and
    ``equal_error`` pick the same test operating point, at a shifted threshold.
    """
    y_test, p_test = as_arrays(test_true, test_prob)
    y_val, p_val = as_arrays(val_true, val_prob)
    shift: dict[str, float] = {}
    if params.target_prevalence is not None:
        shift = {"from": shift_source(train_prevalence, y_val), "to": params.target_prevalence}
        p_test = prior_shift(p_test, shift["from"], shift["to"])
        p_val = prior_shift(p_val, shift["from"], shift["to"])
    validation = _validation_section(y_val, p_val, params)
    chosen = validation["chosen_threshold"]
    tuned = (
        None
        if chosen is None
        else {**binary_metrics(y_test, p_test, chosen), "strategy": params.validation_threshold}
    )
    return {
        "task": "binary",
        "positive_class": params.classes[1],
        "negative_class": params.classes[0],
        **({"prior_shift": shift} if shift else {}),
        "test": {
            "n": int(y_test.size),
            "auc": roc_auc(y_test, p_test),
            "at_fixed_threshold": binary_metrics(y_test, p_test, params.threshold),
            "at_validation_threshold": tuned,
            "confidence_intervals": _binary_intervals(
                y_test, p_test, params.threshold, chosen, params.bootstrap
            ),
        },
        "validation": validation,
    }


def _binary_intervals(
    y: np.ndarray,
    p: np.ndarray,
    threshold: float,
    chosen: float | None,
    settings: BootstrapParams,
) -> dict[str, Any]:
    """Bootstrap intervals at the fixed threshold (and AUC), and at the chosen one.

    Both sets come from the same resamples (same seed), so they compare like for like.
    """

    def run(statistics: dict[str, Statistic]) -> dict[str, Any]:
        return intervals(
            statistics,
            len(y),
            resamples=settings.resamples,
            seed=settings.seed,
            level=settings.level,
        )

    fixed = run(binary_statistics(y, p, threshold))
    if chosen is not None:
        statistics = binary_statistics(y, p, chosen)
        statistics.pop("auc")  # the same at every threshold
        fixed["at_validation_threshold"] = run(statistics)["metrics"]
    return fixed


def multiclass_report(  # noqa: PLR0917 - test and validation, as evaluation_report
    test_true: ArrayLike,
    test_prob: np.ndarray,
    val_true: ArrayLike,
    val_prob: np.ndarray,
    classes: Sequence[str],
    bootstrap: BootstrapParams,
) -> dict[str, Any]:
    """Test metrics of a multiclass model (argmax), with bootstrap intervals, and the
    same metrics of the final model on validation (None when that split is empty).

    ``test.auc`` and ``validation.auc`` are the macro one-vs-rest AUCs, so code that
    ranks models by AUC (the registry's champion, ``chest-xray-runs``) reads both tasks.
    """
    test = multiclass_metrics(test_true, test_prob, classes)
    y_test = np.asarray(test_true).astype(np.int64)
    ci = intervals(
        multiclass_statistics(y_test, np.asarray(test_prob, dtype=np.float64)),
        len(y_test),
        resamples=bootstrap.resamples,
        seed=bootstrap.seed,
        level=bootstrap.level,
    )
    has_validation = len(np.asarray(val_true)) > 0
    validation = multiclass_metrics(val_true, val_prob, classes) if has_validation else None
    return {
        "task": "multiclass",
        "classes": list(classes),
        "decision": "argmax",
        "test": {**test, "auc": test["macro_auc"], "confidence_intervals": ci},
        "validation": {
            "n": 0 if validation is None else validation["n"],
            "auc": None if validation is None else validation["macro_auc"],
            "metrics": validation,
        },
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
    different series, so a different name.) A report that ``skipped`` scoring has none.
    """
    if "skipped" in report:
        return {}
    if report.get("task") == "multiclass":
        return _flat_multiclass(report)
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
    ci = test.get("confidence_intervals")
    if ci:
        flat.update(_flatten_intervals("test", ci["metrics"]))
        flat.update(_flatten_intervals("test_tuned", ci.get("at_validation_threshold") or {}))
    return {key: float(value) for key, value in flat.items() if value is not None}


def _flatten_intervals(prefix: str, metrics: dict[str, Any]) -> dict[str, float | None]:
    """``{accuracy: {low, high}}`` -> ``test_accuracy_ci_low``, ``test_accuracy_ci_high``."""
    flat: dict[str, float | None] = {}
    for name, interval in metrics.items():
        flat[f"{prefix}_{name}_ci_low"] = interval["low"]
        flat[f"{prefix}_{name}_ci_high"] = interval["high"]
    return flat


def _flat_multiclass(report: dict[str, Any]) -> dict[str, float]:
    """``test_accuracy``, ``test_macro_f1``, ``test_auc`` (macro), per class
    ``test_sensitivity_VIRUS``, ``test_auc_VIRUS``..., their intervals
    (``test_macro_f1_ci_low``...), and ``validation_*`` for the overall ones."""
    test = report["test"]
    flat: dict[str, float | None] = {f"test_{key}": test[key] for key in OVERALL_KEYS}
    flat["test_auc"] = test["auc"]
    for name, values in test["per_class"].items():
        flat.update({f"test_{key}_{name}": values[key] for key in PER_CLASS_KEYS})
    intervals = test["confidence_intervals"]["metrics"]
    flat.update(_flatten_intervals("test", intervals))
    if "macro_auc" in intervals:  # test_auc is the macro AUC: the same interval
        flat.update(_flatten_intervals("test", {"auc": intervals["macro_auc"]}))
    validation = report["validation"].get("metrics")
    if validation:
        flat.update({f"validation_{key}": validation[key] for key in OVERALL_KEYS})
    flat["validation_auc"] = report["validation"]["auc"]
    return {key: float(value) for key, value in flat.items() if value is not None}
