"""Batch mixing for training: Keras' ``MixUp`` and ``CutMix`` applied to each train batch.

Both mix an image with another of its batch and the labels in the same proportion:
``mixup`` blends the two images (a weight drawn from Beta(alpha, alpha)), ``cutmix``
pastes a rectangle of the other image (its area share drawn the same way). Neither can
live inside the model, which sees pixels but never labels, so they run where the batch
is made (``batches.ImageBatches``), on the raw 0..255 pixels, before the model's
rescaling, standardisation and affine warp (the two images of a pair then share one
warp; the mixed image is what gets warped).

Reproducible: every batch draws from its own seed, made from the training seed, the
epoch and the batch's index, so a resumed or repeated run mixes the same pairs in the
same way whatever order the batches are loaded in. The layers compute in float32
whatever the precision policy (a bfloat16 blend of 0..255 pixels would be coarse).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from chest_xray.modeling.params import AugmentationParams

# Keras' own defaults: MixUp(alpha=0.2), the ImageNet setting; CutMix(factor=1.0).
DEFAULT_STRENGTH = {"mixup": 0.2, "cutmix": 1.0}


class BatchMixer:
    """Mixes one batch of images and labels: ``mixer(images, labels, epoch, index)``."""

    def __init__(self, kind: str, strength: float | None, seed: int) -> None:
        if kind not in DEFAULT_STRENGTH:
            raise ValueError(f"mixing must be one of {sorted(DEFAULT_STRENGTH)}, got {kind!r}")
        self.kind = kind
        self.strength = DEFAULT_STRENGTH[kind] if strength is None else strength
        self.seed = seed
        if kind == "mixup":
            self.layer: Any = keras.layers.MixUp(alpha=self.strength, dtype="float32")
        else:
            self.layer = keras.layers.CutMix(factor=self.strength, dtype="float32")

    def __call__(
        self, images: np.ndarray, labels: np.ndarray, epoch: int, index: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``images`` (N, H, W, C) mixed within the batch, as float32 0..255, and the
        labels mixed alike: (N,) 0/1 targets or (N, K) one-hot rows, shape kept."""
        binary = labels.ndim == 1
        # (N, 1): the layers weight labels by a (N, 1) column, which would broadcast
        # a flat (N,) vector into an (N, N) matrix.
        targets = labels[:, None] if binary else labels
        data = {"images": images.astype(np.float32), "labels": targets.astype(np.float32)}
        # A generator, not an int: CutMix draws its x and y bounds from the same seed,
        # and an int would make every patch sit on the diagonal. Its own per batch.
        seed = keras.random.SeedGenerator(self._batch_seed(epoch, index))
        drawn = self.layer.get_random_transformation(data, training=True, seed=seed)
        if self.kind == "cutmix":
            drawn["mix_weight"] = self._kept_share(drawn["batch_masks"])
        mixed_images = self.layer.transform_images(data["images"], drawn, training=True)
        mixed_labels = self.layer.transform_labels(data["labels"], drawn, training=True)
        out_images = np.asarray(keras.ops.convert_to_numpy(mixed_images), dtype=np.float32)
        out_labels = np.asarray(keras.ops.convert_to_numpy(mixed_labels), dtype=np.float32)
        return out_images, out_labels[:, 0] if binary else out_labels

    @staticmethod
    def _kept_share(masks: Any) -> np.ndarray:
        """Each image's share of its own pixels, counted on the pasted mask.

        Keras weighs CutMix's labels by the patch's continuous area while it pastes the
        pixels whose centres fall inside it: up to a row and a column apart, 8% of a
        24-pixel image. The label should say what the pixels are.
        """
        pasted = np.asarray(keras.ops.convert_to_numpy(masks), dtype=np.float32)
        return 1.0 - pasted.mean(axis=(1, 2, 3))

    def _batch_seed(self, epoch: int, index: int) -> int:
        return int(np.random.default_rng((self.seed, epoch, index)).integers(2**31 - 1))


def batch_mixer(params: AugmentationParams, seed: int) -> BatchMixer | None:
    """The mixer the augmentation settings ask for, or None (no mixing, or augmentation off)."""
    if not params.enabled or params.mixing == "none":
        return None
    return BatchMixer(params.mixing, params.mixing_strength, seed)
