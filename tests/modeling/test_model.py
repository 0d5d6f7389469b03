"""The VGG-style network, with and without its augmentation layer, and compilation."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from chest_xray.modeling.augmentation import build_augmentation
from chest_xray.modeling.model import build_model, compile_model, without_augmentation
from chest_xray.params import AugmentationParams, ModelParams, OptimizerParams

# Keras' own numpy 2 conversion, not this project's code.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

TINY = ModelParams(conv_filters=[4, 8], dense_units=8)


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


def test_without_augmentation_shares_the_trained_layers(tmp_path: Path) -> None:
    model = build_model((16, 16, 1), TINY, build_augmentation(AugmentationParams(), seed=0))
    plain = without_augmentation(model)
    names = [layer.name for layer in model.layers]
    assert [layer.name for layer in plain.layers] == [n for n in names if n != "augmentation"]
    assert plain.get_layer("conv_1") is model.get_layer("conv_1")  # same weights, no copy
    assert plain.count_params() == model.count_params()
    images = np.random.default_rng(2).integers(0, 256, size=(3, 16, 16, 1), dtype=np.uint8)
    expected = np.asarray(model(images, training=False))
    np.testing.assert_allclose(np.asarray(plain(images)), expected, rtol=1e-6)
    # Saved without the custom layer: stock Keras loads it, with the same outputs.
    plain.save(tmp_path / "model.h5")
    loaded = keras.saving.load_model(tmp_path / "model.h5", compile=False)
    assert {type(layer).__module__.split(".")[0] for layer in loaded.layers} == {"keras"}
    np.testing.assert_allclose(np.asarray(loaded(images)), expected, rtol=1e-6)
    assert without_augmentation(plain) is plain
