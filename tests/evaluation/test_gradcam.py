"""Grad-CAM: it points at the class evidence and matches a direct computation."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from chest_xray.evaluation.gradcam import gradcam, gradcam_with_probabilities, suited_method
from chest_xray.evaluation.gradcam_network import last_conv_layer
from chest_xray.modeling.augmentation import build_augmentation
from chest_xray.modeling.model import build_model, compile_model
from chest_xray.params import AugmentationParams, ModelParams, OptimizerParams

# Keras' own numpy 2 conversion, not this project's code.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

SIZE = 48
TINY = ModelParams(conv_filters=[4, 8], dense_units=8)
tensorflow_only = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="the reference uses tf.GradientTape"
)


def _noise(rng: np.random.Generator, n: int, size: int = SIZE) -> np.ndarray:
    return rng.integers(0, 256, size=(n, size, size, 1), dtype=np.uint8)


def _blob_images(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Dark noise images; PNEUMONIA (label 1) ones carry two bright blobs, top-left only.

    The blobs' centres stay 5 px inside the quadrant, so nearly all of their light is in it.
    Each image's brightness is jittered, so that the mean pixel is a weaker cue than the
    blobs themselves.
    """
    labels = rng.permutation(np.arange(n) % 2)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    images = rng.normal(60.0, 20.0, size=(n, SIZE, SIZE)) + rng.uniform(-10, 10, (n, 1, 1))
    for index in np.flatnonzero(labels):
        for cy, cx in rng.uniform(5, SIZE // 2 - 5, size=(2, 2)):
            images[index] += 150.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 3.0**2))
    return np.clip(images, 0, 255).astype(np.uint8)[..., None], labels


def _reference_maps(model: keras.Model, images: np.ndarray, sign: np.ndarray) -> np.ndarray:
    """Textbook Grad-CAM on d(probability)/d(feature map), written out with a tape."""
    import tensorflow as tf

    conv = last_conv_layer(model)
    grad_model = keras.Model(model.inputs[0], [conv.output, model.output])
    x = tf.constant(images.astype(np.float32))
    with tf.GradientTape() as tape:
        features, prob = grad_model(x, training=False)
        score = tf.reduce_sum(prob[:, 0] * tf.constant(sign, tf.float32))
    grads = tape.gradient(score, features).numpy()
    weights = grads.mean(axis=(1, 2))
    maps = np.maximum(np.einsum("nhwc,nc->nhw", features.numpy(), weights), 0.0)
    up = tf.image.resize(maps[..., None], images.shape[1:3], method="bilinear").numpy()[..., 0]
    return up / up.max(axis=(1, 2), keepdims=True)


# ----------------------------------------------------------------------- it finds the blob


@pytest.mark.slow
@pytest.mark.parametrize(
    ("head", "method"), [("global_average", "gradcam"), ("flatten", "hirescam")]
)
def test_heatmaps_of_a_trained_model_point_at_the_class_evidence(head: str, method: str) -> None:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x_train, y_train = _blob_images(rng, 320)
    x_test, y_test = _blob_images(rng, 64)
    params = ModelParams(conv_filters=[8, 16], dense_units=16, dropout=0.0, head=head)
    model = build_model((SIZE, SIZE, 1), params)
    compile_model(model, OptimizerParams(learning_rate=1e-2))
    model.fit(x_train, y_train, batch_size=32, epochs=8, verbose=0)

    maps, prob = gradcam_with_probabilities(model, x_test, target="pneumonia", method=method)

    accuracy = float(np.mean((prob >= 0.5) == y_test))
    assert accuracy >= 0.9  # otherwise the maps below would mean nothing
    np.testing.assert_allclose(prob, model.predict(x_test, verbose=0)[:, 0], atol=1e-5)
    sick = maps[y_test == 1]
    assert np.all(sick.max(axis=(1, 2)) == 1.0)  # a map for every image, none empty
    quadrant_share = sick[:, : SIZE // 2, : SIZE // 2].sum(axis=(1, 2)) / sick.sum(axis=(1, 2))
    assert quadrant_share.mean() >= 0.5  # chance: the quadrant is 25% of the image


# ------------------------------------------------------------------ shapes and arithmetic


@pytest.mark.parametrize(
    "params",
    [TINY, TINY.model_copy(update={"head": "global_average", "batch_norm": True})],
    ids=["flatten", "global_average+batch_norm"],
)
def test_heatmaps_are_per_image_maps_in_the_unit_range(params: ModelParams) -> None:
    keras.utils.set_random_seed(1)
    model = build_model((SIZE, 40, 1), params, build_augmentation(AugmentationParams()))
    images = _noise(np.random.default_rng(1), 5, SIZE)[:, :, :40]

    maps, prob = gradcam_with_probabilities(model, images)

    assert maps.shape == (5, SIZE, 40)
    assert maps.dtype == np.float32 and prob.dtype == np.float32
    assert np.isfinite(maps).all()
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    peaks = maps.max(axis=(1, 2))
    assert np.all((peaks == 0.0) | np.isclose(peaks, 1.0))  # each map peaks at 1 (or is empty)
    # training=False: the augmentation layer would otherwise change the probabilities.
    np.testing.assert_allclose(prob, model.predict(images, verbose=0)[:, 0], atol=1e-6)


@tensorflow_only
def test_heatmaps_match_a_direct_gradient_tape_computation() -> None:
    keras.utils.set_random_seed(2)
    model = build_model((SIZE, SIZE, 1), TINY.model_copy(update={"batch_norm": True}))
    images = _noise(np.random.default_rng(2), 6)

    maps, prob = gradcam_with_probabilities(model, images, threshold=0.5, method="gradcam")

    sign = np.where(prob >= 0.5, 1.0, -1.0)
    np.testing.assert_allclose(maps, _reference_maps(model, images, sign), atol=1e-4)


def test_target_normal_is_the_opposite_evidence() -> None:
    keras.utils.set_random_seed(3)
    model = build_model((SIZE, SIZE, 1), TINY)
    images = _noise(np.random.default_rng(3), 4)

    pneumonia = gradcam(model, images, target="pneumonia")
    normal = gradcam(model, images, target="normal")
    always_pneumonia = gradcam(model, images, target="predicted", threshold=0.0)

    np.testing.assert_array_equal(always_pneumonia, pneumonia)
    assert not np.allclose(pneumonia, normal)


def test_batch_size_does_not_change_the_maps() -> None:
    keras.utils.set_random_seed(4)
    model = build_model((SIZE, SIZE, 1), TINY.model_copy(update={"batch_norm": True}))
    images = _noise(np.random.default_rng(4), 7)

    one = gradcam_with_probabilities(model, images, batch_size=1)
    many = gradcam_with_probabilities(model, images, batch_size=32)

    np.testing.assert_allclose(one.heatmaps, many.heatmaps, atol=1e-5)
    np.testing.assert_allclose(one.probabilities, many.probabilities, atol=1e-6)


def test_a_model_without_evidence_gives_zero_maps_not_nan() -> None:
    model = build_model((SIZE, SIZE, 1), TINY)
    output = model.get_layer("probability")
    output.set_weights([np.zeros_like(w) for w in output.get_weights()])  # constant logit 0

    maps, prob = gradcam_with_probabilities(model, _noise(np.random.default_rng(5), 3))

    np.testing.assert_array_equal(maps, np.zeros((3, SIZE, SIZE), np.float32))
    np.testing.assert_allclose(prob, 0.5)


def test_a_separate_sigmoid_layer_falls_back_to_the_probability_score() -> None:
    """Same network, sigmoid inside the Dense (logit score) or after it (probability score)."""
    keras.utils.set_random_seed(6)
    inputs = keras.Input((16, 16, 1))
    conv = keras.layers.Conv2D(4, 3, activation="relu")
    pool = keras.layers.GlobalAveragePooling2D()
    fused = keras.layers.Dense(1, activation="sigmoid")
    linear = keras.layers.Dense(1)
    x = pool(conv(keras.layers.Rescaling(1 / 255)(inputs)))
    with_logit = keras.Model(inputs, fused(x))
    with_probability = keras.Model(inputs, keras.layers.Activation("sigmoid")(linear(x)))
    linear.set_weights(fused.get_weights())
    images = _noise(np.random.default_rng(6), 4, 16)

    np.testing.assert_allclose(
        gradcam(with_probability, images), gradcam(with_logit, images), atol=1e-5
    )


def test_images_without_a_channel_axis_and_empty_batches() -> None:
    model = build_model((SIZE, SIZE, 1), TINY)
    images = _noise(np.random.default_rng(7), 2)

    np.testing.assert_array_equal(gradcam(model, images[..., 0]), gradcam(model, images))
    empty = gradcam_with_probabilities(model, images[:0])
    assert empty.heatmaps.shape == (0, SIZE, SIZE) and empty.probabilities.shape == (0,)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"target": "covid"}, "target"), ({"batch_size": 0}, "batch_size")],
)
def test_bad_arguments_are_errors(kwargs: dict[str, object], match: str) -> None:
    model = build_model((SIZE, SIZE, 1), TINY)
    with pytest.raises(ValueError, match=match):
        gradcam(model, _noise(np.random.default_rng(8), 1), **kwargs)


def test_auto_picks_hirescam_for_a_flatten_head_only() -> None:
    flatten = build_model((SIZE, SIZE, 1), TINY.model_copy(update={"head": "flatten"}))
    pooled = build_model((SIZE, SIZE, 1), TINY.model_copy(update={"head": "global_average"}))
    assert suited_method(flatten) == "hirescam"
    assert suited_method(pooled) == "gradcam"
    images = _noise(np.random.default_rng(9), 2)
    np.testing.assert_array_equal(
        gradcam(flatten, images), gradcam(flatten, images, method="hirescam")
    )
