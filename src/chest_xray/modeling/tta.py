"""Test-time augmentation: the mean probability over a few mild, label-preserving views.

A model trained on flipped and shifted images is not exactly invariant to them;
averaging its answers over the original, its mirror image and small shifts
smooths out that variance (a cheap ensemble of views). ``none`` is one pass;
``flip`` two; ``flip_shift`` ten (each of the two at 0 and four 4% shifts).
Shifted views are filled with the nearest edge pixel, as the training warp fills.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import keras

TTA = Literal["none", "flip", "flip_shift"]
SHIFT = 0.04  # of the image side: well inside the training shifts (0.1-0.2)


def views(images: np.ndarray, mode: TTA) -> list[np.ndarray]:
    """The (N, H, W, C) images as each view sees them (the first is the original)."""
    if mode == "none":
        return [images]
    flipped = images[:, :, ::-1, :]
    if mode == "flip":
        return [images, flipped]
    height, width = images.shape[1:3]
    dy, dx = max(1, round(SHIFT * height)), max(1, round(SHIFT * width))
    out = []
    for base in (images, flipped):
        out.append(base)
        for shift_y, shift_x in ((dy, 0), (-dy, 0), (0, dx), (0, -dx)):
            out.append(_shift(base, shift_y, shift_x))
    return out


def tta_probabilities(
    model: keras.Model, images: np.ndarray, batch_size: int, mode: TTA
) -> np.ndarray:
    """P(positive) per image, averaged over the views of ``mode`` (float64, shape (N,));
    for a softmax model every class's probability, (N, K)."""
    total: np.ndarray | None = None
    chosen = views(images, mode)
    for view in chosen:
        for start in range(0, len(view), batch_size):
            part = np.asarray(model.predict_on_batch(view[start : start + batch_size]))
            part = part.reshape(len(part), -1)
            if total is None:
                total = np.zeros((len(images), part.shape[1]), dtype=np.float64)
            total[start : start + len(part)] += part
    if total is None:
        return np.zeros(0, dtype=np.float64)
    mean = total / len(chosen)
    return mean[:, 0] if mean.shape[1] == 1 else mean


def _shift(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Content moved by (dy, dx) pixels, the uncovered border filled with the nearest edge."""
    height, width = images.shape[1:3]
    rows = np.clip(np.arange(height) - dy, 0, height - 1)
    cols = np.clip(np.arange(width) - dx, 0, width - 1)
    return images[:, rows][:, :, cols]
