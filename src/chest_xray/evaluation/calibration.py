"""Calibration: whether a probability of 0.8 is right 80% of the time, and its repair.

Accuracy and AUC say nothing about this: a model can rank perfectly and still say 0.99
for cases that are positive 80% of the time. A research user reading a probability needs
to know how far to trust its value, so every evaluation reports:

* **ECE** (expected calibration error) on ``N_BINS`` equal-width bins of the predicted
  probability: the share-weighted mean gap between the mean predicted probability of a
  bin and the observed rate of positives in it. Binary: the positive class's
  probability. Multi-class: the top label (the most probable class's probability against
  whether it was right), the usual definition (Guo et al. 2017).
* **Brier score** and **log loss** from scikit-learn: proper scores, so they reward
  calibration and ranking together and have no binning to choose.
* the **reliability curve** (the bins' mean probability against their observed rate,
  scikit-learn's ``calibration_curve``, with the bins' counts) that the reliability
  diagram draws.

The repair is **temperature scaling** (one parameter ``T``: the logits divided by it),
fitted on the validation split by log loss, never on test. Chosen over Platt scaling
(two parameters, a slope and an offset) because it cannot change the ranking or move the
0.5 decision point of a binary model, only how sure the probabilities sound; with about a
thousand validation images of one hospital, one parameter is also what can be fitted
without carrying that split's prevalence into the probabilities (an offset would).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_softmax, logit, softmax
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, log_loss

N_BINS = 10
BINNING = f"{N_BINS} equal-width bins of the predicted probability"
# Probabilities are clipped this far from 0 and 1 before taking logits (float32 outputs
# saturate at exactly 0 or 1; a logit of +-inf would make any temperature fit degenerate).
_EPS = 1e-7
# The temperature is searched in this range: below 0.05 or above 20 a model's
# probabilities would be all-or-nothing or all near 0.5, which no real fit needs.
TEMPERATURE_BOUNDS = (0.05, 20.0)


def _as_binary(y_true: Any, prob: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=int).ravel()
    p = np.clip(np.asarray(prob, dtype=float).ravel(), 0.0, 1.0)
    if y.shape != p.shape:
        raise ValueError(f"{y.size} labels but {p.size} probabilities")
    if not set(np.unique(y)) <= {0, 1}:
        raise ValueError("binary calibration needs labels 0 and 1")
    return y, p


def _ece(hit: np.ndarray, confidence: np.ndarray, n_bins: int = N_BINS) -> float:
    """Share-weighted mean |observed rate - mean probability| over equal-width bins."""
    if hit.size == 0:
        return float("nan")
    # Bin i holds [i/n, (i+1)/n); 1.0 goes in the last bin, as in calibration_curve.
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        inside = bins == b
        total += inside.mean() * abs(hit[inside].mean() - confidence[inside].mean())
    return float(total)


def reliability_curve(y_true: Any, prob: Any, n_bins: int = N_BINS) -> dict[str, list[float]]:
    """The non-empty bins' mean probability, observed positive rate and count."""
    y, p = _as_binary(y_true, prob)
    if y.size == 0:
        return {"mean_probability": [], "observed_rate": [], "count": []}
    observed, predicted = calibration_curve(y, p, n_bins=n_bins, strategy="uniform")
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    return {
        "mean_probability": [float(v) for v in predicted],
        "observed_rate": [float(v) for v in observed],
        "count": [int(c) for c in counts[counts > 0]],
    }


def binary_calibration(y_true: Any, prob: Any) -> dict[str, Any]:
    """ECE, Brier score, log loss and the reliability curve of positive-class probabilities."""
    y, p = _as_binary(y_true, prob)
    if y.size == 0:
        return {"n": 0, "binning": BINNING}
    return {
        "n": int(y.size),
        "binning": BINNING,
        "ece": _ece(y.astype(float), p),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, _EPS, 1 - _EPS), labels=[0, 1])),
        "reliability": reliability_curve(y, p),
    }


def _renormalised(p: np.ndarray) -> np.ndarray:
    """Rows that sum to one again after clipping (scikit-learn checks that they do)."""
    return p / p.sum(axis=1, keepdims=True)


def multiclass_calibration(y_true: Any, prob: Any) -> dict[str, Any]:
    """Top-label ECE, multi-class Brier score (mean over classes' squares) and log loss."""
    y = np.asarray(y_true, dtype=int).ravel()
    p = np.asarray(prob, dtype=float)
    if y.size == 0:
        return {"n": 0, "binning": f"top label; {BINNING}"}
    k = p.shape[1]
    onehot = np.eye(k)[y]
    confidence = p.max(axis=1)
    hit = (p.argmax(axis=1) == y).astype(float)
    return {
        "n": int(y.size),
        "binning": f"top label; {BINNING}",
        "ece": _ece(hit, confidence),
        "brier": float(np.mean(np.sum((p - onehot) ** 2, axis=1))),
        "log_loss": float(log_loss(y, _renormalised(np.clip(p, _EPS, 1.0)), labels=list(range(k)))),
        "reliability": reliability_curve(hit, confidence),
    }


def apply_temperature(prob: Any, temperature: float) -> np.ndarray:
    """Binary probabilities with their logits divided by ``temperature`` (1 = unchanged)."""
    p = np.clip(np.asarray(prob, dtype=float), _EPS, 1 - _EPS)
    return np.asarray(expit(logit(p) / temperature))


def apply_temperature_multiclass(prob: Any, temperature: float) -> np.ndarray:
    """Class probabilities with their log-probabilities divided by ``temperature``."""
    log_p = np.log(np.clip(np.asarray(prob, dtype=float), _EPS, 1.0))
    return np.asarray(softmax(log_p / temperature, axis=1))


def _fit(loss: Any) -> float:
    result = minimize_scalar(
        loss, bounds=np.log(TEMPERATURE_BOUNDS), method="bounded", options={"xatol": 1e-4}
    )
    return float(np.exp(result.x))


def fit_temperature(y_true: Any, prob: Any) -> float:
    """The temperature that minimises the log loss of binary probabilities (on validation).

    Searched on log T, so cooling and warming are treated alike. Returns 1.0 (no change)
    when the labels hold one class only: nothing can be learnt about calibration then.
    """
    y, p = _as_binary(y_true, prob)
    if np.unique(y).size < 2:
        return 1.0
    z = logit(np.clip(p, _EPS, 1 - _EPS))

    def loss(log_t: float) -> float:
        q = np.clip(expit(z / np.exp(log_t)), _EPS, 1 - _EPS)
        return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))

    return _fit(loss)


def fit_temperature_multiclass(y_true: Any, prob: Any) -> float:
    """The temperature that minimises the multi-class log loss (on validation)."""
    y = np.asarray(y_true, dtype=int).ravel()
    if np.unique(y).size < 2:
        return 1.0
    log_p = np.log(np.clip(np.asarray(prob, dtype=float), _EPS, 1.0))

    def loss(log_t: float) -> float:
        return float(-np.mean(log_softmax(log_p / np.exp(log_t), axis=1)[np.arange(y.size), y]))

    return _fit(loss)


def calibration_section(
    y_test: Any, p_test: Any, y_val: Any, p_val: Any, *, multiclass: bool = False
) -> dict[str, Any]:
    """The report's ``calibration``: before and after a temperature fitted on validation.

    ``validation`` and ``test`` are the model's own probabilities; the ``*_calibrated``
    entries are after the temperature, which the test split never influences.
    """
    summarise = multiclass_calibration if multiclass else binary_calibration
    fit = fit_temperature_multiclass if multiclass else fit_temperature
    scale = apply_temperature_multiclass if multiclass else apply_temperature
    has_validation = np.asarray(y_val).size > 0
    temperature = fit(y_val, p_val) if has_validation else 1.0
    section: dict[str, Any] = {
        "method": "temperature scaling fitted on the validation split (log loss)",
        "temperature": temperature,
        "test": summarise(y_test, p_test),
        "test_calibrated": summarise(y_test, scale(p_test, temperature)),
    }
    if has_validation:
        section["validation"] = summarise(y_val, p_val)
        section["validation_calibrated"] = summarise(y_val, scale(p_val, temperature))
    return section


def flat_calibration(section: dict[str, Any] | None) -> dict[str, float]:
    """``test_ece``, ``test_brier``, ... (and ``*_calibrated_*``) for a metrics logger."""
    if not section:
        return {}
    flat = {"calibration_temperature": float(section["temperature"])}
    for split in ("test", "test_calibrated", "validation", "validation_calibrated"):
        for key in ("ece", "brier", "log_loss"):
            value = section.get(split, {}).get(key)
            if value is not None:
                flat[f"{split}_{key}"] = float(value)
    return flat
