"""Labels and probabilities checked into 1-D arrays, once, for every metric and rule.

A shape or label mix-up (Keras' ``(n, 1)`` column against a 1-D label vector, a label 2,
a probability above 1) fails here, loudly, rather than as a plausible wrong number.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ArrayLike = Sequence[float] | np.ndarray


def column_to_vector(values: np.ndarray) -> np.ndarray:
    """Accept Keras' ``(n, 1)`` predictions; any other 2-D shape is left to fail."""
    return values[:, 0] if values.ndim == 2 and values.shape[1] == 1 else values


def as_probabilities(prob: ArrayLike) -> np.ndarray:
    """``prob`` as a float vector, refused unless every value is a probability in [0, 1]."""
    p = column_to_vector(np.asarray(prob, dtype=np.float64))
    if p.size and not (np.isfinite(p).all() and p.min() >= 0.0 and p.max() <= 1.0):
        raise ValueError("prob must be probabilities in [0, 1]")
    return p


def as_arrays(y_true: ArrayLike, prob: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate once here so a shape or label mix-up fails loudly, not as a bad metric."""
    y = column_to_vector(np.asarray(y_true))
    p = column_to_vector(np.asarray(prob, dtype=np.float64))
    if y.ndim != 1 or p.ndim != 1 or y.shape != p.shape:
        raise ValueError(f"y_true and prob must be 1-D and equal length, got {y.shape}, {p.shape}")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must contain only 0 and 1")
    return y.astype(np.int64), as_probabilities(p)


def has_both_classes(y: np.ndarray) -> bool:
    """Whether both labels occur: AUC and threshold choice mean nothing otherwise."""
    return bool(np.unique(y).size == 2)
