"""Batch mixing (MixUp / CutMix): labels follow the pixels, reproducible, trains end to end."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from pydantic import ValidationError

from chest_xray.modeling.batches import ImageBatches
from chest_xray.modeling.mixing import BatchMixer, batch_mixer
from chest_xray.modeling.trainer import train_classifier
from chest_xray.params import AugmentationParams, ModelParams, TrainingParams

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def _flat_batch(n: int = 16, size: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Each image one flat grey (its label times 255): a pixel tells whose it is."""
    labels = np.array([i % 2 for i in range(n)], dtype=np.float32)
    images = np.broadcast_to(labels[:, None, None, None] * 255, (n, size, size, 1))
    return images.astype(np.uint8), labels


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
def test_each_label_is_the_share_of_its_image_that_came_from_a_positive(kind: str) -> None:
    images, labels = _flat_batch()
    mixed, targets = BatchMixer(kind, None, seed=3)(images, labels, epoch=0, index=0)
    assert mixed.dtype == np.float32 and mixed.shape == images.shape
    assert targets.shape == labels.shape
    # An image of 0s and 255s (or their blend): its mean / 255 is the positive share.
    np.testing.assert_allclose(mixed.mean(axis=(1, 2, 3)) / 255, targets, atol=1e-5)
    assert not np.allclose(targets, labels), "nothing was mixed"


def test_cutmix_patches_are_rectangles_placed_anywhere_not_on_the_diagonal() -> None:
    images, labels = _flat_batch(n=64, size=40)
    mixed, _ = BatchMixer("cutmix", None, seed=5)(images, labels, epoch=0, index=0)
    tops, lefts = [], []
    for image, label in zip(mixed[..., 0], labels, strict=True):
        patch = np.argwhere(image != label * 255)
        if len(patch) and len(patch) < image.size:
            (top, left), (bottom, right) = patch.min(axis=0), patch.max(axis=0)
            # A rectangle: every pixel inside its bounding box is from the other image.
            assert len(patch) == (bottom - top + 1) * (right - left + 1)
            tops.append(top)
            lefts.append(left)
    assert len(tops) > 5
    assert not np.array_equal(tops, lefts)


def test_one_hot_rows_are_mixed_and_still_sum_to_one() -> None:
    images, labels = _flat_batch()
    one_hot = np.eye(3, dtype=np.float32)[labels.astype(int)]
    _, targets = BatchMixer("mixup", 0.4, seed=1)(images, one_hot, epoch=2, index=1)
    assert targets.shape == one_hot.shape
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)
    assert np.allclose(targets[:, 2], 0.0)


def test_a_batch_is_mixed_the_same_way_every_time_and_differently_elsewhere() -> None:
    images, labels = _flat_batch()
    mixer = BatchMixer("mixup", None, seed=7)
    first = mixer(images, labels, epoch=1, index=4)[1]
    np.testing.assert_array_equal(first, mixer(images, labels, epoch=1, index=4)[1])
    assert not np.array_equal(first, mixer(images, labels, epoch=2, index=4)[1])
    assert not np.array_equal(first, BatchMixer("mixup", None, seed=8)(images, labels, 1, 4)[1])


def test_the_mixer_computes_in_float32_under_a_bfloat16_policy() -> None:
    images = np.full((8, 16, 16, 1), 201, dtype=np.uint8)
    images[::2] = 3
    labels = np.array([0, 1] * 4, dtype=np.float32)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed, targets = BatchMixer("mixup", None, seed=0)(images, labels, 0, 0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    # Pixels 3 (label 0) and 201 (label 1): the share of 201 is the label. bfloat16 keeps
    # 8 significant bits, 0.5 apart at 100: a bfloat16 blend would be off by up to 0.0025.
    share = (mixed[:, 0, 0, 0] - 3) / 198
    np.testing.assert_allclose(share, targets, atol=1e-4)


def test_only_labelled_batches_are_mixed() -> None:
    images, labels = _flat_batch()
    mixer = BatchMixer("cutmix", None, seed=0)
    plain = ImageBatches(images, None, 8, shuffle=False, seed=0, mixer=mixer)
    assert plain[0].dtype == np.uint8
    mixed_images, _ = ImageBatches(images, labels, 8, shuffle=True, seed=0, mixer=mixer)[0]
    assert mixed_images.dtype == np.float32


def test_settings_choose_the_mixer_and_refuse_what_cannot_weigh_mixed_labels() -> None:
    assert batch_mixer(AugmentationParams(), seed=0) is None
    assert batch_mixer(AugmentationParams(mixing="mixup", enabled=False), seed=0) is None
    cutmix = batch_mixer(AugmentationParams(mixing="cutmix"), seed=0)
    assert cutmix is not None and cutmix.strength == 1.0
    assert batch_mixer(AugmentationParams(mixing="mixup", mixing_strength=0.4), 0).strength == 0.4
    with pytest.raises(ValidationError, match="class_weight"):
        TrainingParams(augmentation={"mixing": "mixup"}, class_weight="balanced")
    with pytest.raises(ValidationError, match="mixing"):
        AugmentationParams(mixing="blend")


@pytest.mark.parametrize(("task", "kind"), [("binary", "mixup"), ("multiclass", "cutmix")])
def test_a_model_trains_on_mixed_batches(task: str, kind: str, tmp_path) -> None:
    rng = np.random.default_rng(0)
    n_classes = 2 if task == "binary" else 3
    labels = np.arange(48) % n_classes
    images = (rng.random((48, 24, 24, 1)) * 40 + labels[:, None, None, None] * 60).astype(np.uint8)
    params = TrainingParams(
        task=task,
        epochs=2,
        batch_size=16,
        model=ModelParams(conv_filters=[4], dense_units=8),
        augmentation={"mixing": kind, "rotation_degrees": 0, "zoom": 0, "shear": 0},
        mixed_precision="none",
        checkpoint_dir=str(tmp_path / "checkpoints"),
    )
    model, history = train_classifier(images, labels, images[:16], labels[:16], params)
    assert len(history["loss"]) == 2 and np.isfinite(history["loss"]).all()
    assert model.predict(images[:4], verbose=0).shape == (4, 1 if task == "binary" else 3)
