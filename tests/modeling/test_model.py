"""The VGG-style network, with and without its augmentation layer, and compilation."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from chest_xray.modeling.augmentation import build_augmentation
from chest_xray.modeling.model import (
    PerUpdate,
    build_model,
    compile_model,
    in_float32,
    learning_rate,
    without_augmentation,
)
from chest_xray.params import AugmentationParams, ModelParams, OptimizerParams, TrainingParams

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


def test_width_multiplies_every_convolution_and_keeps_the_depth() -> None:
    wide = build_model((64, 64, 1), ModelParams(conv_filters=[4, 8, 6], dense_units=8, width=1.5))
    assert [wide.get_layer(f"conv_{i}").filters for i in (1, 2, 3)] == [6, 12, 9]
    assert [layer.name for layer in wide.layers] == [
        layer.name
        for layer in build_model(
            (64, 64, 1), TINY.model_copy(update={"conv_filters": [4, 8, 6]})
        ).layers
    ]
    with pytest.raises(ValueError, match="width"):
        ModelParams(width=0)


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


def test_in_float32_computes_in_float32_with_the_trained_weights() -> None:
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = build_model((16, 16, 1), TINY.model_copy(update={"batch_norm": True}))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert mixed.get_layer("conv_1").compute_dtype == "bfloat16"
    plain = in_float32(mixed)
    assert {layer.dtype_policy.name for layer in plain.layers} == {"float32"}
    assert [layer.name for layer in plain.layers] == [layer.name for layer in mixed.layers]
    for got, trained in zip(plain.get_weights(), mixed.get_weights(), strict=True):
        np.testing.assert_array_equal(got, trained)  # BatchNorm's moving statistics too
    images = np.random.default_rng(3).integers(0, 256, size=(4, 16, 16, 1), dtype=np.uint8)
    reference = build_model((16, 16, 1), TINY.model_copy(update={"batch_norm": True}))
    reference.set_weights(mixed.get_weights())  # the same weights, built in float32
    expected = np.asarray(reference(images, training=False))
    np.testing.assert_allclose(np.asarray(plain(images, training=False)), expected, rtol=1e-5)
    sixteen_bit = np.asarray(mixed(images, training=False), dtype=np.float32)
    np.testing.assert_allclose(sixteen_bit, expected, atol=0.05)  # close, not the same maths
    assert in_float32(plain) is plain


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


def test_batch_norm_sits_between_each_conv_and_its_relu() -> None:
    model = build_model((16, 16, 1), TINY.model_copy(update={"batch_norm": True}))
    names = [layer.name for layer in model.layers]
    assert names[2:10] == [
        "conv_1", "batch_norm_1", "relu_1", "pool_1",
        "conv_2", "batch_norm_2", "relu_2", "pool_2",
    ]  # fmt: skip
    assert not model.get_layer("conv_1").use_bias  # beta replaces it
    assert model.get_layer("conv_1").activation.__name__ == "linear"
    plain = build_model((16, 16, 1), TINY)
    assert not any("batch_norm" in layer.name for layer in plain.layers)
    assert plain.get_layer("conv_1").use_bias
    # Inference uses the moving statistics: deterministic, unlike training mode.
    images = np.random.default_rng(0).integers(0, 256, size=(4, 16, 16, 1), dtype=np.uint8)
    np.testing.assert_array_equal(
        np.asarray(model(images, training=False)), np.asarray(model(images, training=False))
    )


def test_label_smoothing_reaches_the_loss() -> None:
    model = build_model((16, 16, 1), TINY)
    compile_model(model, OptimizerParams())
    assert model.loss.get_config()["label_smoothing"] == 0.0
    compile_model(model, OptimizerParams(), label_smoothing=0.1)
    assert model.loss.get_config()["label_smoothing"] == pytest.approx(0.1)
    # a confident right answer now costs something: the target is 0.95, not 1
    loss = model.loss(np.array([[1.0]]), np.array([[0.999]]))
    assert float(loss) > 0.1
    with pytest.raises(ValueError, match="label_smoothing"):
        TrainingParams(label_smoothing=0.5)


def test_cosine_schedule_warms_up_then_decays_to_zero() -> None:
    """10 epochs of 5 updates, 2 of them warm-up: 0 -> peak over 10 updates, then cosine to 0."""
    peak = 1e-3
    schedule = learning_rate(
        OptimizerParams(learning_rate=peak, schedule="cosine", warmup_epochs=2),
        steps_per_epoch=5,
        epochs=10,
    )
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)

    def rate(step: int) -> float:
        return float(schedule(step))

    assert rate(0) == pytest.approx(0.0)
    assert rate(5) == pytest.approx(peak / 2)  # linear warm-up
    assert rate(10) == pytest.approx(peak)  # end of warm-up: the peak
    assert rate(30) == pytest.approx(peak / 2)  # half-way through the 40 decay updates
    last = 49  # the last update of the training
    assert rate(last) == pytest.approx(peak * 0.5 * (1 + np.cos(np.pi * 39 / 40)), rel=1e-4)
    assert rate(last) < peak / 100
    assert rate(50) == pytest.approx(0.0, abs=1e-12)


def test_cosine_schedule_without_warmup_starts_at_the_peak() -> None:
    schedule = learning_rate(
        OptimizerParams(learning_rate=1e-3, schedule="cosine"), steps_per_epoch=4, epochs=5
    )
    assert float(schedule(0)) == pytest.approx(1e-3)
    assert float(schedule(10)) == pytest.approx(5e-4)
    assert float(schedule(20)) == pytest.approx(0.0, abs=1e-12)


def test_constant_rate_is_the_plain_number() -> None:
    assert learning_rate(OptimizerParams(learning_rate=3e-4), 0, 0) == 3e-4
    # an untrained model (epochs=0) has no update to schedule
    assert learning_rate(OptimizerParams(learning_rate=3e-4, schedule="cosine"), 0, 0) == 3e-4
    with pytest.raises(ValueError, match="needs the training's length"):
        learning_rate(OptimizerParams(schedule="cosine"), steps_per_epoch=0, epochs=3)


def test_compiled_optimizer_follows_the_schedule() -> None:
    model = build_model((16, 16, 1), TINY)
    optimizer = OptimizerParams(learning_rate=1e-3, schedule="cosine", warmup_epochs=1)
    compile_model(model, optimizer, steps_per_epoch=3, epochs=4)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0)  # step 0 of warm-up
    images = np.zeros((2, 16, 16, 1), dtype=np.uint8)
    model.fit(images, np.array([0.0, 1.0]), batch_size=1, epochs=1, verbose=0)  # 2 updates
    assert float(model.optimizer.learning_rate) == pytest.approx(2e-3 / 3)


def test_schedule_counts_updates_under_gradient_accumulation() -> None:
    """Keras hands a schedule its micro-step counter; update k is micro-step 4k + 3."""
    optimizer = OptimizerParams(learning_rate=1e-3, schedule="cosine", warmup_epochs=1)
    whole = learning_rate(optimizer, steps_per_epoch=5, epochs=3)
    micro = learning_rate(optimizer, steps_per_epoch=5, epochs=3, accumulation_steps=4)
    assert isinstance(micro, PerUpdate)
    for update in (0, 3, 5, 9, 14):
        assert float(micro(4 * update + 3)) == pytest.approx(float(whole(update)))
    clone = PerUpdate.from_config(micro.get_config())
    assert float(clone(4 * 7 + 3)) == pytest.approx(float(whole(7)))


def test_weight_decay_is_adamws_and_unset_keeps_its_default() -> None:
    model = build_model((16, 16, 1), TINY)
    compile_model(model, OptimizerParams(name="adamw", weight_decay=0.05))
    assert model.optimizer.weight_decay == pytest.approx(0.05)
    compile_model(model, OptimizerParams(name="adamw"))
    assert model.optimizer.weight_decay == pytest.approx(keras.optimizers.AdamW().weight_decay)
    compile_model(model, OptimizerParams(name="adam"))
    assert model.optimizer.weight_decay is None
    with pytest.raises(ValueError, match="weight_decay is for the adamw optimizer, not 'sgd'"):
        OptimizerParams(name="sgd", weight_decay=0.01)


def test_warmup_needs_the_cosine_schedule() -> None:
    with pytest.raises(ValueError, match="warmup_epochs needs schedule: cosine"):
        OptimizerParams(warmup_epochs=2)


def test_intensity_augmentation_is_left_out_of_the_saved_model(tmp_path: Path) -> None:
    augmentation = build_augmentation(AugmentationParams(brightness=0.2, contrast=0.3), seed=0)
    model = build_model((16, 16, 1), TINY, augmentation)
    assert model.get_layer("augmentation") is augmentation
    images = np.random.default_rng(2).integers(0, 256, size=(3, 16, 16, 1), dtype=np.uint8)
    expected = np.asarray(model(images, training=False))
    assert not np.allclose(np.asarray(model(images, training=True)), expected)
    plain = without_augmentation(model)
    names = [layer.name for layer in plain.layers]
    assert not {"augmentation", "brightness", "contrast"} & set(names)
    np.testing.assert_allclose(np.asarray(plain(images)), expected, rtol=1e-6)
    plain.save(tmp_path / "model.h5")
    loaded = keras.saving.load_model(tmp_path / "model.h5", compile=False)
    assert {type(layer).__module__.split(".")[0] for layer in loaded.layers} == {"keras"}
    np.testing.assert_allclose(np.asarray(loaded(images)), expected, rtol=1e-6)


def test_ema_leaves_the_moving_average_of_the_weights_in_the_model() -> None:
    """With ``ema`` the trained model holds the average, not the last update's weights.

    A momentum of 0.999 over a few large steps keeps the average nearer the starting
    weights, while the same training without it moves them far: the model fit returns
    must be the averaged one (Keras' finalize_variable_values at the end of fit).
    """
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(32, 16, 16, 1)).astype("float32")
    labels = rng.integers(0, 2, size=32)

    def drift(optimizer: OptimizerParams) -> float:
        keras.utils.set_random_seed(3)
        model = build_model((16, 16, 1), TINY)
        start = [w.numpy().copy() for w in model.trainable_weights]
        compile_model(model, optimizer)
        model.fit(images, labels, batch_size=8, epochs=2, verbose=0)
        return sum(
            float(np.abs(w.numpy() - s).sum())
            for w, s in zip(model.trainable_weights, start, strict=True)
        )

    plain = drift(OptimizerParams(learning_rate=1e-2))
    averaged = drift(OptimizerParams(learning_rate=1e-2, ema=True, ema_momentum=0.999))
    assert averaged < 0.5 * plain  # without the average: the same drift (ratio 1)
    with pytest.raises(ValueError, match="ema_momentum"):
        OptimizerParams(ema=True, ema_momentum=1.0)
