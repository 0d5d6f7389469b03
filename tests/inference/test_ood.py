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

SIZE = (60, 52)


def chest_like(rng: np.random.Generator, size: tuple[int, int] = SIZE) -> np.ndarray:
    """A frontal film, roughly: grey body, two dark lungs either side of a bright spine."""
    height, width = size
    v, u = np.mgrid[0:height, 0:width]
    v, u = v / (height - 1), u / (width - 1)
    body = 150 + rng.normal(0, 8)
    image = np.full(size, body) - 60 * (np.abs(u - 0.5) > 0.45)
    for side in (0.28, 0.72):
        cu, cv = side + rng.normal(0, 0.02), 0.45 + rng.normal(0, 0.03)
        lung = ((u - cu) / 0.17) ** 2 + ((v - cv) / 0.3) ** 2 < 1
        image[lung] -= 80 + rng.normal(0, 8)
    image[:, int(0.47 * width) : int(0.53 * width)] += 40
    image += rng.normal(0, 6, size)
    return np.clip(image, 0, 255).astype(np.uint8)


def not_chest(rng: np.random.Generator) -> dict[str, np.ndarray]:
    film = chest_like(rng)
    return {
        "blank": np.zeros(SIZE, np.uint8),
        "white": np.full(SIZE, 255, np.uint8),
        "noise": rng.integers(0, 256, SIZE).astype(np.uint8),
        "gradient": np.tile(np.linspace(0, 255, SIZE[1]), (SIZE[0], 1)).astype(np.uint8),
        "inverted": 255 - film,
        "rotated": np.ascontiguousarray(np.rot90(chest_like(rng, SIZE[::-1]))),
    }


@pytest.fixture(scope="module")
def guard() -> OodGuard:
    rng = np.random.default_rng(0)
    train = (chest_like(rng) for _ in range(150))  # a generator: consumed one at a time
    validation = [chest_like(rng) for _ in range(60)]
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
    assert guard.n_fit == 150 and guard.n_threshold == 60
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
