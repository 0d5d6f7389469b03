"""Batches for ``model.fit`` / ``model.predict`` drawn from one uint8 image array.

Kept apart from ``inputs`` because it subclasses a Keras class: importing it
loads Keras (and TensorFlow), which only training and prediction should pay for.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np


class ImageBatches(keras.utils.PyDataset):
    """Batches of uint8 images (and float32 labels) drawn by index from one array.

    Each batch is a fancy-indexed copy of just its rows, so the dataset never
    holds a second (let alone float) copy of ``images``. With ``shuffle`` the
    order of epoch ``e`` is a permutation seeded by ``(seed, e)``: different
    every epoch, identical between runs. A ``mixer`` (``mixing.BatchMixer``) mixes
    each labelled batch, given its epoch and index; its batches are then float32.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray | None,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int,
        mixer: Callable[[np.ndarray, np.ndarray, int, int], tuple[np.ndarray, np.ndarray]]
        | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if labels is not None and len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = None if labels is None else np.asarray(labels, dtype=np.float32)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.mixer = mixer
        self.epoch = 0
        self.order = self._order_for(self.epoch)

    def _order_for(self, epoch: int) -> np.ndarray:
        """Row order of one epoch; identity when not shuffling (predictions stay aligned)."""
        if not self.shuffle:
            return np.arange(len(self.images))
        return np.random.default_rng((self.seed, epoch)).permutation(len(self.images))

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index: int) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"Batch {index} out of range for {len(self)} batches")
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        batch = self.images[rows]
        if self.labels is None:
            return batch
        if self.mixer is not None:
            return self.mixer(batch, self.labels[rows], self.epoch, index)
        return batch, self.labels[rows]

    def on_epoch_end(self) -> None:
        """Move on to the next epoch's permutation."""
        self.epoch += 1
        self.order = self._order_for(self.epoch)
