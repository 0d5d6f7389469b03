"""An ensemble is the mean of its members' probabilities; unlike members are an error."""

from __future__ import annotations

import numpy as np
import pytest

from chest_xray.modeling.ensemble import mean_probabilities
from chest_xray.modeling.tta import tta_probabilities


class Scaled:
    """A stand-in network: the image mean times a factor, one output or ``classes``."""

    def __init__(self, factor: float, classes: int = 1) -> None:
        self.factor, self.classes = factor, classes

    def predict_on_batch(self, batch: np.ndarray) -> np.ndarray:
        p = batch.mean(axis=(1, 2, 3)) / 255.0 * self.factor
        return np.repeat(p[:, None], self.classes, axis=1) / self.classes


def test_the_ensemble_is_the_mean_of_its_members() -> None:
    images = np.random.default_rng(0).integers(0, 256, (7, 12, 12, 1)).astype(np.float32)
    members = [Scaled(0.2), Scaled(0.5), Scaled(0.9)]
    got = mean_probabilities(members, images, batch_size=3)  # type: ignore[arg-type]
    mean = images.mean(axis=(1, 2, 3)) / 255.0
    np.testing.assert_allclose(got, mean * (0.2 + 0.5 + 0.9) / 3, rtol=1e-6)
    assert got.shape == (7,) and got.dtype == np.float64
    one = mean_probabilities([Scaled(0.5)], images, 3)  # type: ignore[list-item]
    np.testing.assert_allclose(one, tta_probabilities(Scaled(0.5), images, 3, "none"))  # type: ignore[arg-type]


def test_each_member_is_averaged_over_the_test_time_views() -> None:
    images = np.zeros((2, 10, 10, 1), np.float32)
    images[:, :, :3] = 255.0
    members = [Scaled(0.3), Scaled(0.6)]
    got = mean_probabilities(members, images, 4, tta="flip_shift")  # type: ignore[arg-type]
    expected = np.mean(
        [tta_probabilities(m, images, 4, "flip_shift") for m in members],  # type: ignore[arg-type]
        axis=0,
    )
    np.testing.assert_allclose(got, expected)


def test_multiclass_members_average_per_class() -> None:
    images = np.full((3, 8, 8, 1), 255.0, np.float32)
    got = mean_probabilities([Scaled(1.0, 3), Scaled(0.5, 3)], images, 2)  # type: ignore[list-item]
    np.testing.assert_allclose(got, np.full((3, 3), 0.75 / 3))


def test_members_of_different_tasks_or_no_member_are_errors() -> None:
    images = np.zeros((2, 8, 8, 1), np.float32)
    with pytest.raises(ValueError, match=r"member 2 answers in shape \(2, 3\)"):
        mean_probabilities([Scaled(1.0), Scaled(1.0, 3)], images, 2)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="at least one model"):
        mean_probabilities([], images, 2)
