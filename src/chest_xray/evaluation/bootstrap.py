"""Percentile bootstrap confidence intervals of test metrics, vectorised.

A test set of a few hundred images gives each metric a sampling error of a
few points: 0.92 on 600 images is compatible with anything from about 0.90
to 0.94. The intervals here say how large it is: the test images are
resampled with replacement ``resamples`` times (each resample as large as the
test set, drawn by numpy's ``Generator`` from ``seed``), every metric is
computed on each, and the interval is the ``(1 - level) / 2`` and
``(1 + level) / 2`` percentiles of those values (Efron's percentile method).
It covers the variation due to *which* test images were drawn, not the
variation of training (another seed or split gives another model).

A resample is represented by how often it draws each image (a row of counts),
so every metric is a weighted sum over the images: one matrix product per
metric instead of a Python loop over 1,000 resamples. The AUC is the weighted
Mann-Whitney statistic (ties count one half), computed over the images sorted
once by score.

**Resamples that lack a class.** A metric undefined on a resample
(sensitivity with no positive image drawn, an AUC or a macro average with a
class absent) is NaN there; the interval is taken over the resamples where
it is defined, and their number is reported per metric as
``undefined_resamples``. With a class of a handful of images this number is
what tells the reader the interval is shaky.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

# Resamples drawn at a time: bounds memory (a chunk of counts is chunk x n).
_CHUNK = 1000

# counts (B, n) -> one value per resample (B,), NaN where undefined.
Statistic = Callable[[np.ndarray], np.ndarray]


def resample_counts(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """How often each of ``n`` items is drawn, per resample: (chunk, n) int arrays.

    Indices are drawn uniformly with replacement, ``n`` per resample, in chunks
    from one ``numpy.random.Generator``: the same seed gives the same resamples.
    """
    if n < 1:
        raise ValueError("the bootstrap needs at least one test image")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    rng = np.random.default_rng(seed)
    done = 0
    while done < resamples:
        size = min(_CHUNK, resamples - done)
        draws = rng.integers(0, n, size=(size, n))
        offsets = (np.arange(size) * n)[:, None]
        counts = np.bincount((draws + offsets).ravel(), minlength=size * n)
        yield counts.reshape(size, n)
        done += size


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is 0 (the rate is undefined)."""
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def rate(hits: np.ndarray, among: np.ndarray | None = None) -> Statistic:
    """Share of ``hits`` (0/1 per item) among the items where ``among`` is 1 (all: None)."""
    hits = np.asarray(hits, dtype=np.float64)
    among = np.ones_like(hits) if among is None else np.asarray(among, dtype=np.float64)
    return lambda counts: _ratio(counts @ (hits * among), counts @ among)


def auc(positive: np.ndarray, scores: np.ndarray) -> Statistic:
    """ROC AUC of ``scores`` for ``positive`` (bool per item): weighted Mann-Whitney U.

    On the original sample (all counts 1) it equals scikit-learn's ``roc_auc_score``;
    NaN on a resample without a positive or without a negative item.
    """
    positive = np.asarray(positive, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    pos = positive[order].astype(np.float64)

    def statistic(counts: np.ndarray) -> np.ndarray:
        weights = counts[:, order].astype(np.float64)
        pos_w = np.add.reduceat(weights * pos, starts, axis=1)  # per distinct score
        neg_w = np.add.reduceat(weights * (1.0 - pos), starts, axis=1)
        below = np.cumsum(neg_w, axis=1) - neg_w  # negatives strictly below each score
        wins = (pos_w * (below + 0.5 * neg_w)).sum(axis=1)
        return _ratio(wins, pos_w.sum(axis=1) * neg_w.sum(axis=1))

    return statistic


def _zero_if_undefined(statistic: Statistic) -> Statistic:
    return lambda counts: np.nan_to_num(statistic(counts), nan=0.0)


def macro(statistics: list[Statistic]) -> Statistic:
    """The mean of per-class statistics; NaN where any of them is (a class absent)."""
    return lambda counts: np.mean([statistic(counts) for statistic in statistics], axis=0)


def intervals(
    statistics: Mapping[str, Statistic],
    n: int,
    *,
    resamples: int,
    seed: int,
    level: float,
) -> dict[str, Any]:
    """Percentile intervals of each statistic over ``resamples`` resamples of ``n`` items.

    Returns ``{"method", "resamples", "seed", "level", "metrics": {name: {"low",
    "high", "undefined_resamples"}}}``; ``low``/``high`` are None when the
    statistic is undefined on every resample.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    values: dict[str, list[np.ndarray]] = {name: [] for name in statistics}
    for counts in resample_counts(n, resamples, seed):
        for name, statistic in statistics.items():
            values[name].append(statistic(counts))
    tail = 100.0 * (1.0 - level) / 2.0
    metrics = {}
    for name, chunks in values.items():
        all_values = np.concatenate(chunks)
        defined = all_values[~np.isnan(all_values)]
        low, high = (
            (None, None)
            if defined.size == 0
            else (float(v) for v in np.percentile(defined, [tail, 100.0 - tail]))
        )
        metrics[name] = {
            "low": low,
            "high": high,
            "undefined_resamples": int(all_values.size - defined.size),
        }
    return {
        "method": "percentile bootstrap over test images",
        "resamples": int(resamples),
        "seed": int(seed),
        "level": float(level),
        "metrics": metrics,
    }


def binary_statistics(y: np.ndarray, prob: np.ndarray, threshold: float) -> dict[str, Statistic]:
    """Accuracy, sensitivity, specificity and balanced accuracy at ``threshold``, and AUC."""
    y = np.asarray(y).astype(np.int64)
    pred = (np.asarray(prob) >= threshold).astype(np.int64)
    correct = pred == y
    sensitivity = rate(correct, y == 1)
    specificity = rate(correct, y == 0)
    return {
        "accuracy": rate(correct),
        "sensitivity": sensitivity,
        "specificity": specificity,
        "balanced_accuracy": macro([sensitivity, specificity]),
        "auc": auc(y == 1, np.asarray(prob, dtype=np.float64)),
    }


def multiclass_statistics(y: np.ndarray, prob: np.ndarray) -> dict[str, Statistic]:
    """Accuracy, and the macro averages over the classes present in ``y``: sensitivity
    (balanced accuracy), precision, F1 and one-vs-rest AUC; the prediction is the argmax.

    Classes absent from the test set have no sensitivity or AUC on any resample, so
    the macro averages are over the classes present in the test set; a resample
    that lacks one of those has an undefined macro average (NaN).
    """
    y = np.asarray(y).astype(np.int64)
    prob = np.asarray(prob, dtype=np.float64)
    pred = prob.argmax(axis=1)
    correct = pred == y
    present = [k for k in range(prob.shape[1]) if np.any(y == k)]
    recalls = [rate(correct, y == k) for k in present]
    # A class never predicted has precision 0, as scikit-learn's zero_division=0 says.
    precisions = [_zero_if_undefined(rate(correct, pred == k)) for k in present]

    def f1(k: int) -> Statistic:
        hits = (correct & (y == k)).astype(np.float64)
        size = (y == k).astype(np.float64) + (pred == k)
        return lambda counts: _ratio(2.0 * (counts @ hits), counts @ size)

    return {
        "accuracy": rate(correct),
        "balanced_accuracy": macro(recalls),
        "macro_precision": macro(precisions),
        "macro_f1": macro([f1(k) for k in present]),
        "macro_auc": macro([auc(y == k, prob[:, k]) for k in present]),
    }
