"""The out-of-distribution guard on small generated images: chest-like films against the rest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chest_xray.inference.ood import (
    OodGuard,
    OodGuardError,
    feature_matrix,
    fit_guard,
    image_features,
    load_guard,
    save_guard,
)
from tests.inference.ood_images import SIZE, chest_like, not_chest


@pytest.fixture(scope="module")
def guard() -> OodGuard:
    rng = np.random.default_rng(0)
    train = (chest_like(rng) for _ in range(300))  # a generator: consumed one at a time
    validation = [chest_like(rng) for _ in range(100)]
    return fit_guard(train, validation, quantile=0.99)


def test_features_are_finite_and_size_free() -> None:
    rng = np.random.default_rng(1)
    large = chest_like(rng, (240, 208))
    small = np.asarray(Image.fromarray(large).resize((52, 60), Image.LANCZOS))
    features = feature_matrix([small, large[..., None], np.zeros((5, 7), np.uint8)])
    assert features.shape[0] == 3 and np.isfinite(features).all()
    assert np.abs(features[0] - features[1]).max() < 0.1  # same picture, other size


def test_features_refuse_colour() -> None:
    with pytest.raises(ValueError, match="grey"):
        image_features(np.zeros((8, 8, 3), np.uint8))


def test_real_like_films_pass_and_the_rest_is_flagged(guard: OodGuard) -> None:
    rng = np.random.default_rng(2)
    films = [chest_like(rng) for _ in range(200)]
    false_alarms = guard.flags(guard.scores(films)).mean()
    assert false_alarms <= 0.05  # the 99% quantile of validation: ~1% by design
    others = not_chest(rng)
    flags = dict(zip(others, guard.flags(guard.scores(others.values())), strict=True))
    assert all(flags.values()), flags
    assert guard.n_fit == 300 and guard.n_threshold == 100
    assert guard.threshold_source == "validation"


def test_threshold_follows_the_quantile() -> None:
    rng = np.random.default_rng(3)
    train = [chest_like(rng) for _ in range(80)]
    validation = [chest_like(rng) for _ in range(40)]
    loose = fit_guard(train, validation, quantile=0.99)
    strict = fit_guard(train, validation, quantile=0.5)
    assert strict.threshold < loose.threshold
    flagged = strict.flags(strict.scores(validation)).mean()
    assert 0.4 <= flagged <= 0.6


def test_too_few_validation_images_fall_back_to_train() -> None:
    rng = np.random.default_rng(4)
    guard = fit_guard([chest_like(rng) for _ in range(30)], [chest_like(rng)], quantile=0.9)
    assert guard.threshold_source.startswith("train") and guard.n_threshold == 30


def test_fit_refuses_too_little() -> None:
    with pytest.raises(OodGuardError, match="at least 2 TRAIN"):
        fit_guard([np.zeros(SIZE, np.uint8)], [])
    with pytest.raises(OodGuardError, match="quantile"):
        fit_guard([np.zeros(SIZE, np.uint8)] * 3, [], quantile=1.0)


def test_save_and_load_round_trip(guard: OodGuard, tmp_path: Path) -> None:
    path = tmp_path / "ood_guard.npz"
    save_guard(guard, path)
    loaded = load_guard(path)
    rng = np.random.default_rng(5)
    images = [chest_like(rng), *not_chest(rng).values()]
    np.testing.assert_allclose(loaded.scores(images), guard.scores(images))
    assert loaded.threshold == guard.threshold and loaded.describe() == guard.describe()


def test_a_damaged_guard_file_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "ood_guard.npz"
    path.write_bytes(b"not a guard")
    with pytest.raises(OodGuardError, match=r"ood_guard\.npz"):
        load_guard(path)
    np.savez(path, feature_version=np.int64(99))
    with pytest.raises(OodGuardError, match="feature version 99"):
        load_guard(path)
