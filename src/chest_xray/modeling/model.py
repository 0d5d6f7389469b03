"""The write-up's VGG-style CNN, written against the backend-neutral Keras 3 API.

Nothing here imports TensorFlow, so the same network builds and trains with
``KERAS_BACKEND`` set to ``tensorflow``, ``jax`` or ``torch``.
"""

from __future__ import annotations

import keras

from chest_xray.modeling.augmentation import AUGMENTATION_LAYER
from chest_xray.params import ModelParams, OptimizerParams

# Pixel maths (rescaling, affine resampling) stays in float32 even under a
# mixed_float16 policy: float16 cannot address a 300 px grid to sub-pixel
# precision (its spacing is 0.25 above 256), so warps would be visibly coarse.
_PIXEL_DTYPE = "float32"

_OPTIMIZERS: dict[str, type[keras.optimizers.Optimizer]] = {
    "adam": keras.optimizers.Adam,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
    "adamw": keras.optimizers.AdamW,
}


def build_model(
    input_shape: tuple[int, int, int],
    params: ModelParams,
    augmentation: keras.layers.Layer | None = None,
    name: str = "vgg_xray",
) -> keras.Model:
    """The write-up's network; takes raw 0..255 pixels so datasets stay uint8.

    Rescaling (and the augmentation, which Keras runs only when
    ``training=True``) live inside the model, so callers feed unnormalised
    pixels both for training and for inference and can never forget the 1/255.
    The input is float32 so uint8 batches are cast exactly and float pixels are
    never truncated; the cast happens on the accelerator, after a uint8 transfer.

    ``fit`` / ``predict`` / ``evaluate`` set ``training`` themselves; a direct
    call must pass ``training=False``, because Keras' random image layers
    default to ``training=True`` when it is left as None.
    """
    _check_spatial_size(input_shape, params)
    inputs = keras.Input(shape=input_shape, dtype="float32", name="pixels")
    x = keras.layers.Rescaling(1.0 / 255.0, dtype=_PIXEL_DTYPE, name="rescale")(inputs)
    if augmentation is not None:
        x = augmentation(x)
    for index, filters in enumerate(params.conv_filters, start=1):
        x = keras.layers.Conv2D(
            filters,
            params.kernel_size,
            activation="relu",
            padding="valid",
            name=f"conv_{index}",
        )(x)
        x = keras.layers.MaxPooling2D(params.pool_size, name=f"pool_{index}")(x)
    if params.head == "flatten":
        x = keras.layers.Flatten(name="flatten")(x)
    else:
        x = keras.layers.GlobalAveragePooling2D(name="global_average")(x)
    x = keras.layers.Dropout(params.dropout, name="dropout")(x)
    x = keras.layers.Dense(params.dense_units, activation="relu", name="dense")(x)
    # float32 output: a float16 sigmoid saturates at 1 - 2**-11 and its
    # log-loss would be computed in half precision.
    outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="probability")(x)
    return keras.Model(inputs, outputs, name=name)


def without_augmentation(model: keras.Model) -> keras.Model:
    """The same network (sharing its trained layers) minus the ``augmentation`` layer.

    Augmentation only acts in training, so the model that is saved, logged and
    served leaves it out: it then holds stock Keras layers only and loads
    anywhere Keras does, without this package (e.g. an MLflow pyfunc server).
    """
    names = [layer.name for layer in model.layers]
    if AUGMENTATION_LAYER not in names:
        return model
    inputs = keras.Input(
        shape=model.inputs[0].shape[1:], dtype=model.inputs[0].dtype, name=model.layers[0].name
    )
    x = inputs
    for layer in model.layers[1:]:  # a plain chain: build_model adds no branches
        if layer.name != AUGMENTATION_LAYER:
            x = layer(x)
    return keras.Model(inputs, x, name=model.name)


def _check_spatial_size(input_shape: tuple[int, int, int], params: ModelParams) -> None:
    """Fail with a readable message instead of a negative-dimension error deep in Keras."""
    for axis, size in zip(("height", "width"), input_shape[:2], strict=True):
        remaining = size
        for _ in params.conv_filters:
            remaining = (remaining - params.kernel_size + 1) // params.pool_size
            if remaining < 1:
                raise ValueError(
                    f"Image {axis} {size} is too small for {len(params.conv_filters)} "
                    f"conv/pool blocks (kernel {params.kernel_size}, pool {params.pool_size})"
                )


def compile_model(
    model: keras.Model, optimizer: OptimizerParams, accumulation_steps: int = 1
) -> None:
    """Binary cross-entropy with accuracy and ROC AUC, the write-up's optimiser by default.

    ``accumulation_steps`` > 1 averages that many steps' gradients into one
    update (Keras' gradient accumulation). Under a ``mixed_float16`` policy
    Keras wraps the optimiser in a LossScaleOptimizer itself.
    """
    model.compile(
        optimizer=_OPTIMIZERS[optimizer.name](
            learning_rate=optimizer.learning_rate,
            gradient_accumulation_steps=accumulation_steps if accumulation_steps > 1 else None,
        ),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[
            keras.metrics.BinaryAccuracy(name="accuracy"),
            keras.metrics.AUC(name="auc"),
        ],
    )
