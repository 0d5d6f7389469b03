"""The VGG-style network, its augmentation block and compilation (no training)."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from chest_xray.model import build_augmentation, build_model, compile_model
from chest_xray.params import AugmentationParams, ModelParams, OptimizerParams

# Keras' own numpy 2 conversion, not this project's code.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

TINY = ModelParams(conv_filters=[4, 8], dense_units=8)
ALL_LAYERS = ["flip", "rotate", "translate", "shear", "zoom"]


def _layer_names(block: keras.Sequential) -> list[str]:
    return [layer.name for layer in block.layers]


def test_recipe_has_the_write_ups_parameter_count() -> None:
    model = build_model((300, 300, 1), ModelParams(), build_augmentation(AugmentationParams()))
    assert model.count_params() == 17_018_497
    assert model.output_shape == (None, 1)
    names = [layer.name for layer in model.layers]
    assert names == [
        "pixels",
        "rescale",
        "augmentation",
        "conv_1",
        "pool_1",
        "conv_2",
        "pool_2",
        "conv_3",
        "pool_3",
        "conv_4",
        "pool_4",
        "flatten",
        "dropout",
        "dense",
        "probability",
    ]
    assert model.get_layer("pool_4").output.shape == (None, 16, 16, 128)


def test_global_average_head_is_much_smaller() -> None:
    model = build_model((300, 300, 1), ModelParams(head="global_average"))
    # conv stack 240,256 + Dense(128 -> 512) 66,048 + Dense(512 -> 1) 513
    assert model.count_params() == 306_817
    assert "augmentation" not in [layer.name for layer in model.layers]


def test_too_small_image_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"height 32 is too small for 4 conv/pool blocks"):
        build_model((32, 300, 1), ModelParams())


def test_model_rescales_raw_pixels() -> None:
    model = build_model((16, 16, 1), TINY)
    pixels = np.full((1, 16, 16, 1), 255, dtype=np.uint8)
    rescaled = keras.Model(model.input, model.get_layer("rescale").output)
    np.testing.assert_allclose(np.asarray(rescaled(pixels)), 1.0)
    # uint8 and the same pixels as float give the same prediction
    np.testing.assert_allclose(
        np.asarray(model(pixels)), np.asarray(model(pixels.astype(np.float32))), rtol=1e-6
    )


def test_output_stays_float32_under_mixed_precision() -> None:
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model((16, 16, 1), TINY, build_augmentation(AugmentationParams(), seed=0))
        assert model.get_layer("conv_1").compute_dtype == "float16"
        out = model(np.zeros((2, 16, 16, 1), dtype=np.uint8), training=True)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"


def test_augmentation_disabled_is_none() -> None:
    assert build_augmentation(AugmentationParams(enabled=False)) is None
    nothing = AugmentationParams(
        rotation_degrees=0,
        width_shift=0,
        height_shift=0,
        shear=0,
        zoom=0,
        horizontal_flip=False,
    )
    assert build_augmentation(nothing) is None


@pytest.mark.parametrize(
    ("switch_off", "removed"),
    [
        ({"horizontal_flip": False}, ["flip"]),
        ({"rotation_degrees": 0}, ["rotate"]),
        ({"shear": 0}, ["shear"]),
        ({"zoom": 0}, ["zoom"]),
        ({"width_shift": 0}, []),  # height shift still translates
        ({"width_shift": 0, "height_shift": 0}, ["translate"]),
    ],
)
def test_each_switch_removes_its_layer(switch_off: dict[str, object], removed: list[str]) -> None:
    block = build_augmentation(AugmentationParams(**switch_off))
    assert block is not None
    assert _layer_names(block) == [name for name in ALL_LAYERS if name not in removed]


def test_augmentation_follows_legacy_generator_settings() -> None:
    block = build_augmentation(AugmentationParams(fill_mode="reflect"), seed=7)
    assert block is not None
    rotate, translate, shear, zoom = (block.get_layer(n) for n in ALL_LAYERS[1:])
    assert rotate.factor == pytest.approx((-40 / 360, 40 / 360))
    for layer in (translate, zoom):  # each axis sampled on its own in +-0.2
        assert (layer.height_lower, layer.height_upper) == pytest.approx((-0.2, 0.2))
        assert (layer.width_lower, layer.width_upper) == pytest.approx((-0.2, 0.2))
    assert shear.x_factor == pytest.approx((0.0, 0.2))  # sign is random inside the layer
    assert shear.y_factor == pytest.approx((0.0, 0.0))
    assert {layer.fill_mode for layer in (rotate, translate, shear, zoom)} == {"reflect"}
    # distinct seeds, so the layers' random draws are not correlated
    assert len({layer.seed for layer in block.layers}) == len(block.layers)


def test_augmentation_changes_pixels_only_in_training() -> None:
    block = build_augmentation(AugmentationParams(), seed=3)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(4, 32, 32, 1)).astype(np.float32)
    inference = np.asarray(block(images, training=False))
    training = np.asarray(block(images, training=True))
    np.testing.assert_array_equal(inference, images)
    assert training.shape == images.shape
    assert np.abs(training - images).mean() > 10


def test_augmented_model_is_deterministic_at_inference() -> None:
    model = build_model((16, 16, 1), TINY, build_augmentation(AugmentationParams(), seed=0))
    images = np.random.default_rng(1).integers(0, 256, size=(3, 16, 16, 1), dtype=np.uint8)
    inference = np.asarray(model(images, training=False))
    np.testing.assert_array_equal(inference, np.asarray(model(images, training=False)))
    np.testing.assert_allclose(model.predict(images, verbose=0), inference, rtol=1e-6)
    # Keras quirk: a bare model(x) leaves training=None and Keras' random image
    # layers default to training=True, so they DO augment. Pass training=False.
    assert not np.allclose(np.asarray(model(images)), inference)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("adam", keras.optimizers.Adam),
        ("sgd", keras.optimizers.SGD),
        ("rmsprop", keras.optimizers.RMSprop),
        ("adamw", keras.optimizers.AdamW),
    ],
)
def test_compile_uses_chosen_optimizer(name: str, cls: type) -> None:
    model = build_model((16, 16, 1), TINY)
    compile_model(model, OptimizerParams(name=name, learning_rate=3e-3))
    assert type(model.optimizer) is cls
    assert float(model.optimizer.learning_rate) == pytest.approx(3e-3)
    assert isinstance(model.loss, keras.losses.BinaryCrossentropy)
    images = np.zeros((2, 16, 16, 1), dtype=np.uint8)
    results = model.evaluate(images, np.array([0.0, 1.0]), verbose=0, return_dict=True)
    assert set(results) == {"loss", "accuracy", "auc"}


def test_saved_model_with_augmentation_loads_back(tmp_path: Path) -> None:
    model = build_model((16, 16, 1), TINY, build_augmentation(AugmentationParams(), seed=0))
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    images = np.random.default_rng(2).integers(0, 256, size=(3, 16, 16, 1), dtype=np.uint8)
    np.testing.assert_allclose(
        np.asarray(loaded(images, training=False)), np.asarray(model(images, training=False))
    )
    assert [layer.name for layer in loaded.get_layer("augmentation").layers] == ALL_LAYERS
