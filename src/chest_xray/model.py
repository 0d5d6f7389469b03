"""The write-up's VGG-style CNN, written against the backend-neutral Keras 3 API.

Nothing here imports TensorFlow, so the same network builds and trains with
``KERAS_BACKEND`` set to ``tensorflow``, ``jax`` or ``torch``.
"""

from __future__ import annotations

from collections.abc import Iterator

import keras

from chest_xray.params import AugmentationParams, ModelParams, OptimizerParams

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


def build_augmentation(
    params: AugmentationParams, seed: int | None = None
) -> keras.Sequential | None:
    """Train-time augmentation as preprocessing layers, mirroring the legacy generator.

    Mapping from ``ImageDataGenerator`` (which the write-up used):

    - ``horizontal_flip=True`` -> ``RandomFlip("horizontal")``.
    - ``rotation_range=40`` (uniform in +-40 degrees) -> ``RandomRotation(40 / 360)``,
      whose factor is a fraction of a full turn, sampled in +-factor.
    - ``width_shift_range`` / ``height_shift_range`` (fractions of the size, +-) ->
      ``RandomTranslation(height_factor, width_factor)``, same meaning.
    - ``shear_range`` is a shear *angle in degrees* (0.2 degrees is a slope of
      ~0.0035, practically nothing); ``RandomShear(x_factor)`` takes a slope
      (fraction of the image). As ``AugmentationParams`` documents, ``shear`` is
      passed as the slope, on the x axis (x moves with y) like the legacy generator.
    - ``zoom_range=0.2`` draws x and y zoom independently in [0.8, 1.2] ->
      ``RandomZoom(height_factor=0.2, width_factor=0.2)``, which also samples
      each axis on its own.
    - ``fill_mode`` (legacy default ``"nearest"``) is passed to every warping layer.

    A transform set to 0 / False is left out. Returns None when augmentation is
    disabled or nothing is left, so the model carries no inert layers.
    """
    if not params.enabled:
        return None
    seeds = _seed_stream(seed)
    warp = {"fill_mode": params.fill_mode, "dtype": _PIXEL_DTYPE}
    layers: list[keras.layers.Layer] = []
    if params.horizontal_flip:
        layers.append(
            keras.layers.RandomFlip("horizontal", seed=next(seeds), dtype=_PIXEL_DTYPE, name="flip")
        )
    if params.rotation_degrees:
        layers.append(
            keras.layers.RandomRotation(
                params.rotation_degrees / 360.0, seed=next(seeds), name="rotate", **warp
            )
        )
    if params.width_shift or params.height_shift:
        layers.append(
            keras.layers.RandomTranslation(
                height_factor=params.height_shift,
                width_factor=params.width_shift,
                seed=next(seeds),
                name="translate",
                **warp,
            )
        )
    if params.shear:
        layers.append(
            # (0, shear), not the float: RandomShear stores a float f as (-f, f) in
            # its config, which its own validation rejects when a saved .keras
            # model is loaded (Keras 3.15). The layer flips the sign at random,
            # so (0, f) samples the same +-f range.
            keras.layers.RandomShear(
                x_factor=(0.0, params.shear),
                y_factor=(0.0, 0.0),
                seed=next(seeds),
                name="shear",
                **warp,
            )
        )
    if params.zoom:
        layers.append(
            keras.layers.RandomZoom(
                height_factor=params.zoom,
                width_factor=params.zoom,
                seed=next(seeds),
                name="zoom",
                **warp,
            )
        )
    if not layers:
        return None
    return keras.Sequential(layers, name="augmentation")


def _seed_stream(seed: int | None) -> Iterator[int | None]:
    """Distinct seeds per layer: equal seeds would make their random draws correlated."""
    offset = 0
    while True:
        yield None if seed is None else seed + offset
        offset += 1


def build_model(
    input_shape: tuple[int, int, int],
    params: ModelParams,
    augmentation: keras.Sequential | None = None,
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


def compile_model(model: keras.Model, optimizer: OptimizerParams) -> None:
    """Binary cross-entropy with accuracy and ROC AUC, the write-up's optimiser by default.

    Under a ``mixed_float16`` policy Keras wraps the optimiser in a
    LossScaleOptimizer itself, so nothing special is needed here.
    """
    model.compile(
        optimizer=_OPTIMIZERS[optimizer.name](learning_rate=optimizer.learning_rate),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[
            keras.metrics.BinaryAccuracy(name="accuracy"),
            keras.metrics.AUC(name="auc"),
        ],
    )
