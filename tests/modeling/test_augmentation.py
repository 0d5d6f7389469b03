"""RandomAffine: the geometry of one composed warp, and its draws against the legacy generator."""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pytest

from chest_xray.modeling.augmentation import RandomAffine, affine_transforms, build_augmentation
from chest_xray.params import AugmentationParams

# Keras' own numpy 2 conversion, not this project's code.
pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
    ),
    # the legacy generator's own scipy import
    pytest.mark.filterwarnings("ignore:Please import `affine_transform`:DeprecationWarning"),
]

IMAGES = np.random.default_rng(0).integers(0, 256, size=(2, 7, 7, 1)).astype(np.float32)


def _warp(fill_mode: str = "nearest", **draws: float) -> np.ndarray:
    """Warp IMAGES with one fixed transform (identity except for ``draws``)."""
    values = {"angle": 0.0, "shear": 0.0, "zoom_x": 1.0, "zoom_y": 1.0}
    values |= {"shift_x": 0.0, "shift_y": 0.0, "flip": 1.0} | draws
    rows = affine_transforms(
        height=7, width=7, **{key: keras.ops.full((2,), value) for key, value in values.items()}
    )
    return np.asarray(keras.ops.image.affine_transform(IMAGES, rows, fill_mode=fill_mode))


def test_identity_keeps_every_pixel() -> None:
    np.testing.assert_array_equal(_warp(), IMAGES)


def test_flip_mirrors_left_right() -> None:
    np.testing.assert_array_equal(_warp(flip=-1.0), IMAGES[:, :, ::-1])


def test_quarter_turn_is_rot90_about_the_centre() -> None:
    quarter_turn = np.rot90(IMAGES, 1, axes=(1, 2))
    np.testing.assert_allclose(_warp(angle=math.pi / 2), quarter_turn, atol=1e-3)


def test_shift_moves_content_by_whole_pixels() -> None:
    shifted = _warp(fill_mode="constant", shift_x=2.0)  # output x reads input x + 2
    np.testing.assert_array_equal(shifted[:, :, :5], IMAGES[:, :, 2:])
    np.testing.assert_array_equal(shifted[:, :, 5:], 0.0)


def test_zoom_and_shear_keep_the_centre_fixed() -> None:
    warped = _warp(zoom_x=0.5, zoom_y=1.2, shear=0.2, angle=0.3)
    np.testing.assert_allclose(warped[:, 3, 3], IMAGES[:, 3, 3], atol=1e-3)
    zoomed_in = _warp(zoom_x=0.5, zoom_y=1.0)  # x read at half the distance from the centre
    np.testing.assert_allclose(zoomed_in[:, :, 1], IMAGES[:, :, 2], atol=1e-4)


def test_layer_augments_only_in_training() -> None:
    layer = build_augmentation(AugmentationParams(), seed=3)
    images = np.random.default_rng(0).integers(0, 256, size=(4, 32, 32, 1)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(layer(images, training=False)), images)
    augmented = np.asarray(layer(images, training=True))
    assert augmented.shape == images.shape
    assert np.abs(augmented - images).mean() > 10
    # Each image gets its own draw: the same image twice comes out differently.
    pair = np.asarray(layer(np.repeat(images[:1], 2, axis=0), training=True))
    assert not np.allclose(pair[0], pair[1])


def test_same_seed_same_draws() -> None:
    images = np.random.default_rng(1).integers(0, 256, size=(3, 24, 24, 1)).astype(np.float32)
    first = build_augmentation(AugmentationParams(), seed=11)
    second = build_augmentation(AugmentationParams(), seed=11)
    np.testing.assert_array_equal(
        np.asarray(first(images, training=True)), np.asarray(second(images, training=True))
    )


def test_layer_is_built_from_the_parameters() -> None:
    layer = build_augmentation(AugmentationParams(fill_mode="reflect", shear=0.1), seed=7)
    assert isinstance(layer, RandomAffine)
    assert layer.name == "augmentation"
    assert (layer.rotation_degrees, layer.width_shift, layer.height_shift) == (40, 0.2, 0.2)
    assert (layer.shear, layer.zoom, layer.horizontal_flip) == (0.1, 0.2, True)
    assert (layer.fill_mode, layer.seed, layer.compute_dtype) == ("reflect", 7, "float32")


def test_nothing_to_do_builds_nothing() -> None:
    assert build_augmentation(AugmentationParams(enabled=False)) is None
    off = {"rotation_degrees": 0, "width_shift": 0, "height_shift": 0, "shear": 0, "zoom": 0}
    assert build_augmentation(AugmentationParams(**off, horizontal_flip=False)) is None
    flip_only = build_augmentation(AugmentationParams(**off), seed=0)
    assert flip_only is not None
    image = np.arange(2 * 5 * 5, dtype=np.float32).reshape(2, 5, 5, 1)
    flipped = np.asarray(flip_only(np.repeat(image[:1], 64, axis=0), training=True))
    mirrored = [np.array_equal(out, image[0, :, ::-1]) for out in flipped]
    unchanged = [np.array_equal(out, image[0]) for out in flipped]
    assert all(m != u for m, u in zip(mirrored, unchanged, strict=True))  # exactly one of the two
    assert 16 < sum(mirrored) < 48


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="fill_mode"):
        RandomAffine(fill_mode="mirror")
    with pytest.raises(ValueError, match="zoom must be >= 0"):
        RandomAffine(zoom=-0.1)


def test_layer_survives_a_config_round_trip_and_a_saved_model(tmp_path: Path) -> None:
    layer = build_augmentation(AugmentationParams(zoom=0.1), seed=5)
    clone = RandomAffine.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    inputs = keras.Input((16, 16, 1))
    model = keras.Model(inputs, layer(inputs))
    model.save(tmp_path / "augment.keras")
    loaded = keras.models.load_model(tmp_path / "augment.keras")
    assert isinstance(loaded.get_layer("augmentation"), RandomAffine)
    assert loaded.get_layer("augmentation").zoom == pytest.approx(0.1)


def _landing_points(images: np.ndarray) -> np.ndarray:
    """Intensity centroid (x, y) of each image; NaN where the dot left the frame."""
    total = images.sum(axis=(1, 2))
    ys, xs = np.mgrid[: images.shape[1], : images.shape[2]]
    with np.errstate(invalid="ignore", divide="ignore"):
        x = (images * xs).sum(axis=(1, 2)) / total
        y = (images * ys).sum(axis=(1, 2)) / total
    points = np.stack([x, y], axis=1)
    points[total < 0.5 * total.max()] = np.nan  # mostly outside: not a landing point
    return points


def test_draws_match_the_legacy_generator() -> None:
    """Where an off-centre dot lands: same spread as ImageDataGenerator's, write-up settings.

    The legacy shear is an angle in degrees acting as sin(angle); asin(0.2) is
    the same slope as ``shear=0.2`` here. Everything is symmetric, so the
    per-axis mean and spread of the landing points, the share that left the
    frame and the share mirrored must agree within sampling noise.
    """
    legacy_module = pytest.importorskip("keras.src.legacy.preprocessing.image")
    size, n = 41, 600
    dot = np.zeros((size, size, 1), dtype=np.float32)
    dot[9:12, 29:32] = 255.0  # centred at x=30, y=10: 10 px right of and above the centre
    params = AugmentationParams()  # the write-up's ranges (shear as a slope)
    legacy = legacy_module.ImageDataGenerator(
        rotation_range=params.rotation_degrees,
        width_shift_range=params.width_shift,
        height_shift_range=params.height_shift,
        shear_range=math.degrees(math.asin(params.shear)),
        zoom_range=params.zoom,
        horizontal_flip=params.horizontal_flip,
        fill_mode="nearest",
    )
    np.random.seed(0)  # the legacy generator draws from NumPy's global state
    legacy_out = np.stack([legacy.random_transform(dot) for _ in range(n)])[..., 0]
    ours_out = np.asarray(
        build_augmentation(params, seed=0)(np.repeat(dot[None], n, axis=0), training=True)
    )[..., 0]

    # how much of the dot is left on average: the zoom's direction and range
    assert ours_out.sum() / n == pytest.approx(legacy_out.sum() / n, rel=0.05)
    legacy_points, our_points = _landing_points(legacy_out), _landing_points(ours_out)
    legacy_lost, our_lost = np.isnan(legacy_points[:, 0]), np.isnan(our_points[:, 0])
    assert abs(legacy_lost.mean() - our_lost.mean()) < 0.05
    legacy_points, our_points = legacy_points[~legacy_lost], our_points[~our_lost]
    centre = (size - 1) / 2
    for axis in (0, 1):
        # spread: per-axis standard deviation within 10%
        assert our_points[:, axis].std() == pytest.approx(legacy_points[:, axis].std(), rel=0.1)
        # distance from the centre along the axis: same mean within 1 px
        assert np.abs(our_points[:, axis] - centre).mean() == pytest.approx(
            np.abs(legacy_points[:, axis] - centre).mean(), abs=1.0
        )
    # mirrored share (the dot starts on the right): both about one half
    assert (our_points[:, 0] < centre).mean() == pytest.approx(
        (legacy_points[:, 0] < centre).mean(), abs=0.08
    )


GEOMETRY_OFF = {
    "rotation_degrees": 0,
    "width_shift": 0,
    "height_shift": 0,
    "shear": 0,
    "zoom": 0,
    "horizontal_flip": False,
}
# Rescaled pixels (the augmentation runs after the model's 1/255), well inside [0, 1]
# so that no clipping blurs the bounds.
GREYS = np.random.default_rng(4).uniform(0.35, 0.65, size=(64, 12, 12, 1)).astype(np.float32)


def test_brightness_shifts_each_image_within_the_bound_in_training_only() -> None:
    layer = build_augmentation(AugmentationParams(**GEOMETRY_OFF, brightness=0.2), seed=1)
    assert isinstance(layer, keras.Sequential)
    assert layer.name == "augmentation"
    assert [sub.name for sub in layer.layers] == ["brightness"]
    np.testing.assert_array_equal(np.asarray(layer(GREYS, training=False)), GREYS)
    shifted = np.asarray(layer(GREYS, training=True))
    shift = (shifted - GREYS).mean(axis=(1, 2, 3))
    # one shift per image, a fraction of the [0, 1] range: at most 0.2, not 0.2 * 255
    np.testing.assert_allclose(
        shifted - GREYS, np.broadcast_to(shift[:, None, None, None], GREYS.shape), atol=1e-5
    )
    assert np.abs(shift).max() <= 0.2 + 1e-6
    assert np.abs(shift).max() > 0.1  # 64 draws: some come near the bound
    assert (shift > 0).any() and (shift < 0).any()


def test_contrast_scales_about_each_images_mean_in_training_only() -> None:
    layer = build_augmentation(AugmentationParams(**GEOMETRY_OFF, contrast=0.3), seed=1)
    np.testing.assert_array_equal(np.asarray(layer(GREYS, training=False)), GREYS)
    adjusted = np.asarray(layer(GREYS, training=True))
    np.testing.assert_allclose(adjusted.mean(axis=(1, 2)), GREYS.mean(axis=(1, 2)), atol=1e-5)
    ratio = adjusted.std(axis=(1, 2, 3)) / GREYS.std(axis=(1, 2, 3))
    assert ratio.min() >= 0.7 - 1e-4
    assert ratio.max() <= 1.3 + 1e-4
    assert ratio.max() - ratio.min() > 0.2


def test_intensity_follows_the_warp_and_stays_float32() -> None:
    layer = build_augmentation(AugmentationParams(brightness=0.1, contrast=0.1), seed=5)
    assert [sub.name for sub in layer.layers] == ["augmentation", "brightness", "contrast"]
    assert isinstance(layer.layers[0], RandomAffine)
    assert {sub.compute_dtype for sub in layer.layers} == {"float32"}
    assert tuple(layer.get_layer("brightness").value_range) == (0.0, 1.0)
    # seeded: the same seed draws the same augmentation
    again = build_augmentation(AugmentationParams(brightness=0.1, contrast=0.1), seed=5)
    np.testing.assert_array_equal(
        np.asarray(layer(GREYS, training=True)), np.asarray(again(GREYS, training=True))
    )


def test_intensity_is_off_by_default_and_with_the_augmentation() -> None:
    assert isinstance(build_augmentation(AugmentationParams(), seed=0), RandomAffine)
    assert build_augmentation(AugmentationParams(enabled=False, brightness=0.2)) is None
    with pytest.raises(ValueError, match="brightness"):
        AugmentationParams(brightness=-0.1)
