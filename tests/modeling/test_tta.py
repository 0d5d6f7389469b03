"""Test-time augmentation: which views, and that their probabilities are averaged."""

from __future__ import annotations

import numpy as np
import pytest

from chest_xray.modeling.tta import tta_probabilities, views


class MeanOfLeftHalf:
    """A stand-in network whose answer depends on where the bright pixels are."""

    def predict_on_batch(self, batch: np.ndarray) -> np.ndarray:
        half = batch.shape[2] // 2
        return batch[:, :, :half].mean(axis=(1, 2, 3)) / 255.0


def test_views_are_the_original_its_mirror_and_small_shifts() -> None:
    images = np.arange(2 * 25 * 25, dtype=np.uint8).reshape(2, 25, 25, 1)
    assert len(views(images, "none")) == 1
    original, mirror = views(images, "flip")
    np.testing.assert_array_equal(original, images)
    np.testing.assert_array_equal(mirror, images[:, :, ::-1])
    shifted = views(images, "flip_shift")
    assert len(shifted) == 10
    down = shifted[1]  # moved down by 1 pixel (4% of 25), the top row repeated
    np.testing.assert_array_equal(down[:, 1:], images[:, :-1])
    np.testing.assert_array_equal(down[:, 0], images[:, 0])


@pytest.mark.parametrize("mode", ["none", "flip", "flip_shift"])
def test_probabilities_are_the_mean_over_the_views(mode: str) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 20, 20, 1)).astype(np.float32)
    model = MeanOfLeftHalf()
    expected = np.mean([model.predict_on_batch(view) for view in views(images, mode)], axis=0)  # type: ignore[arg-type]
    got = tta_probabilities(model, images, batch_size=2, mode=mode)  # type: ignore[arg-type]
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_flip_averaging_makes_a_one_sided_model_symmetric() -> None:
    images = np.zeros((1, 10, 10, 1), np.float32)
    images[..., :5, :] = 255  # bright left half
    model = MeanOfLeftHalf()
    left = tta_probabilities(model, images, 4, "flip")  # type: ignore[arg-type]
    right = tta_probabilities(model, images[:, :, ::-1], 4, "flip")  # type: ignore[arg-type]
    np.testing.assert_allclose(left, right)
    assert tta_probabilities(model, images, 4, "none")[0] == 1.0  # type: ignore[arg-type]
