"""Where Grad-CAM cuts the network: the rectified last feature map, in the model's own graph."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from chest_xray.evaluation.gradcam import gradcam
from chest_xray.evaluation.gradcam_network import last_conv_layer
from chest_xray.modeling.augmentation import build_augmentation
from chest_xray.modeling.model import build_model, without_augmentation
from chest_xray.params import AugmentationParams, ModelParams

# Keras' own numpy 2 conversion, not this project's code.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

SIZE = 48
TINY = ModelParams(conv_filters=[4, 8], dense_units=8)


def _noise(rng: np.random.Generator, n: int, size: int = SIZE) -> np.ndarray:
    return rng.integers(0, 256, size=(n, size, size, 1), dtype=np.uint8)


def test_last_conv_layer_is_the_rectified_map_before_pooling() -> None:
    plain = build_model((SIZE, SIZE, 1), TINY)
    normalised = build_model((SIZE, SIZE, 1), TINY.model_copy(update={"batch_norm": True}))

    assert last_conv_layer(plain).name == "conv_2"
    assert last_conv_layer(normalised).name == "relu_2"


def test_last_conv_layer_of_a_model_without_convolution_is_an_error() -> None:
    inputs = keras.Input((8, 8, 1))
    flat = keras.layers.Flatten()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(flat))

    with pytest.raises(ValueError, match="no Conv2D"):
        last_conv_layer(model)
    with pytest.raises(ValueError, match="no Conv2D"):
        gradcam(model, np.zeros((1, 8, 8, 1), np.uint8))


def test_the_served_model_without_augmentation_gives_the_same_maps() -> None:
    """Its layers were also called in the training model's graph: the right tensors are used."""
    keras.utils.set_random_seed(5)
    params = TINY.model_copy(update={"batch_norm": True})
    trained = build_model((SIZE, SIZE, 1), params, build_augmentation(AugmentationParams()))
    served = without_augmentation(trained)
    images = _noise(np.random.default_rng(5), 3)

    assert last_conv_layer(served) is last_conv_layer(trained)
    np.testing.assert_allclose(gradcam(served, images), gradcam(trained, images), atol=1e-6)


def test_a_model_that_is_not_a_chain_is_refused() -> None:
    inputs = keras.Input((8, 8, 1))
    conv = keras.layers.Conv2D(2, 3)(inputs)
    merged = keras.layers.Concatenate()([conv, keras.layers.Conv2D(2, 3)(inputs)])
    flat = keras.layers.Flatten()(merged)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(flat))

    with pytest.raises(ValueError, match="plain chain"):
        gradcam(model, np.zeros((1, 8, 8, 1), np.uint8))
