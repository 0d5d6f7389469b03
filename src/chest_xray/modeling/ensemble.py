"""Several models as one classifier: the mean of their probabilities.

Models trained on different subsets of TRAIN (the folds of a cross-validation) make
partly independent errors, so the mean of their probabilities ranks the images better
than a typical member and depends less on one training run's draw of initial weights,
batches and augmentations: a variance reduction, bought with k times the prediction
time. Each member's probability is itself averaged over the test-time augmentation
views when asked (``tta``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from chest_xray.modeling.tta import TTA, tta_probabilities

if TYPE_CHECKING:
    import keras


def member_probabilities(
    models: Sequence[keras.Model], images: np.ndarray, batch_size: int, tta: TTA = "none"
) -> list[np.ndarray]:
    """Each member's P(positive) per image (N,), or every class's (N, K), float64.

    Members must answer in the same shape: a member trained for another task or
    class list is an error naming it (1-based), not an average of unlike things.
    """
    if not models:
        raise ValueError("An ensemble needs at least one model")
    answers: list[np.ndarray] = []
    for member, model in enumerate(models, start=1):
        probability = tta_probabilities(model, images, batch_size, tta).astype(np.float64)
        if answers and probability.shape != answers[0].shape:
            raise ValueError(
                f"Ensemble member {member} answers in shape {probability.shape}, member 1 in "
                f"{answers[0].shape}: the models were trained for different tasks or classes"
            )
        answers.append(probability)
    return answers


def mean_probabilities(
    models: Sequence[keras.Model], images: np.ndarray, batch_size: int, tta: TTA = "none"
) -> np.ndarray:
    """The members' mean probability (``member_probabilities``, averaged)."""
    return np.mean(member_probabilities(models, images, batch_size, tta), axis=0)
