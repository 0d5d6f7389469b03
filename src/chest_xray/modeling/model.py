"""The write-up's VGG-style CNN, written against the backend-neutral Keras 3 API.

Nothing here imports TensorFlow, so the same network builds and trains with
``KERAS_BACKEND`` set to ``tensorflow``, ``jax`` or ``torch``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from chest_xray.modeling.augmentation import AUGMENTATION_LAYER
from chest_xray.modeling.params import ModelParams, OptimizerParams

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
    *,
    n_classes: int = 2,
) -> keras.Model:
    """The write-up's network; takes raw 0..255 pixels so datasets stay uint8.

    Two classes: one sigmoid unit, P(class 1), as the write-up. More: a softmax
    over ``n_classes`` units (the multiclass task), one probability per class.

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
    if params.input_normalisation == "standardize":
        x = _standardize(x)
    for index, filters in enumerate(params.conv_filters, start=1):
        x = _conv_block(x, index, max(1, round(filters * params.width)), params)
    outputs = _head(x, params, n_classes)
    return keras.Model(inputs, outputs, name=name)


def _standardize(x: keras.KerasTensor) -> Any:
    """Each image to zero mean and unit variance over all its pixels, no learnt shift or scale.

    Stock layers, so the saved model still loads without this package. Float32 like the
    pixels. epsilon far below an X-ray's pixel variance (~0.04 on 0..1), so a brighter
    copy of an image standardises to the same pixels; a flat image stays finite. Over one
    axis of the flattened image, not LayerNormalization(axis=[1, 2, 3]): Keras' HDF5
    loader (the project's .h5 model files) drops an axis list of more than one axis and
    loads axis=-1, which on one grey channel turns every pixel to 0 and the model into a
    constant (AUC 0.5 after a reload).
    """
    height, width, channels = x.shape[1:]
    x = keras.layers.Reshape(
        (height * width * channels,), dtype=_PIXEL_DTYPE, name="standardize_flatten"
    )(x)
    x = keras.layers.LayerNormalization(
        axis=-1,
        epsilon=1e-6,
        center=False,
        scale=False,
        dtype=_PIXEL_DTYPE,
        name="standardize",
    )(x)
    return keras.layers.Reshape(
        (height, width, channels), dtype=_PIXEL_DTYPE, name="standardize_restore"
    )(x)


def _head(x: keras.KerasTensor, params: ModelParams, n_classes: int) -> Any:
    """Flatten or global-average, dropout, the dense layer, then the probabilities.

    The output layer is float32: a float16 sigmoid saturates at 1 - 2**-11 and its
    log-loss would be computed in half precision.
    """
    if params.head == "flatten":
        x = keras.layers.Flatten(name="flatten")(x)
    else:
        x = keras.layers.GlobalAveragePooling2D(name="global_average")(x)
    x = keras.layers.Dropout(params.dropout, name="dropout")(x)
    x = keras.layers.Dense(params.dense_units, activation="relu", name="dense")(x)
    if n_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {n_classes}")
    units, activation = (1, "sigmoid") if n_classes == 2 else (n_classes, "softmax")
    return keras.layers.Dense(units, activation=activation, dtype="float32", name="probability")(x)


def _conv_block(x: keras.KerasTensor, index: int, filters: int, params: ModelParams) -> Any:
    """Conv -> ReLU -> max-pool; with ``batch_norm``, conv -> BatchNorm -> ReLU -> max-pool.

    The normalisation sits before the activation, on the convolution's raw
    output, and that convolution drops its bias: the normalisation's own shift
    (beta) replaces it, so a bias would only be subtracted out again.
    """
    if not params.batch_norm:
        x = keras.layers.Conv2D(
            filters, params.kernel_size, activation="relu", padding="valid", name=f"conv_{index}"
        )(x)
    else:
        x = keras.layers.Conv2D(
            filters, params.kernel_size, padding="valid", use_bias=False, name=f"conv_{index}"
        )(x)
        x = keras.layers.BatchNormalization(name=f"batch_norm_{index}")(x)
        x = keras.layers.Activation("relu", name=f"relu_{index}")(x)
    return keras.layers.MaxPooling2D(params.pool_size, name=f"pool_{index}")(x)


def without_augmentation(model: keras.Model) -> keras.Model:
    """The same network (sharing its trained layers) minus the ``augmentation`` layer.

    Augmentation only acts in training, so the model that is saved, logged and
    served leaves it out: it then holds stock Keras layers only and loads
    anywhere Keras does, without this package (e.g. an MLflow pyfunc server).
    """
    names = [layer.name for layer in model.layers]
    if AUGMENTATION_LAYER not in names:
        return model
    return _rechained(model, lambda layer, x: x if layer.name == AUGMENTATION_LAYER else layer(x))


def in_float32(model: keras.Model) -> keras.Model:
    """The same network, every layer computing in float32, with the trained weights.

    Mixed precision is a way to train fast where the hardware has fast 16-bit maths
    (bfloat16 on AMX / AVX512-BF16 CPUs, float16 on Tensor Cores). A layer keeps its
    policy when saved, so a model trained so would predict in 16 bits on every machine
    that loads it: slowly where the hardware has no such maths, and a little differently
    from its own weights in float32 (bfloat16 keeps 8 bits of mantissa). Its variables
    are float32 already; only the computation changes. Takes a plain chain, as
    ``without_augmentation`` returns; a model that is float32 throughout comes back as is.
    """
    if all(layer.dtype_policy.name == "float32" for layer in model.layers):
        return model
    return _rechained(model, _float32_copy)


def _float32_copy(layer: keras.layers.Layer, x: keras.KerasTensor) -> Any:
    """``layer`` made again in float32 and applied to ``x``, then given its weights."""
    copy = type(layer).from_config(layer.get_config() | {"dtype": "float32"})
    output = copy(x)  # built here, so the weights have somewhere to go
    copy.set_weights(layer.get_weights())
    return output


def _rechained(
    model: keras.Model, step: Callable[[keras.layers.Layer, keras.KerasTensor], Any]
) -> keras.Model:
    """``model``, a plain chain (``build_model`` adds no branches), rebuilt on a new input:
    each layer after the input turns the tensor so far into the next through ``step``."""
    inputs = keras.Input(
        shape=model.inputs[0].shape[1:], dtype=model.inputs[0].dtype, name=model.layers[0].name
    )
    x = inputs
    for layer in model.layers[1:]:
        x = step(layer, x)
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
    model: keras.Model,
    optimizer: OptimizerParams,
    accumulation_steps: int = 1,
    *,
    label_smoothing: float = 0.0,
    steps_per_epoch: int = 0,
    epochs: int = 0,
) -> None:
    """Binary cross-entropy with accuracy and ROC AUC, the write-up's optimiser by default.

    A softmax model (more than one output unit) gets categorical cross-entropy on
    one-hot targets instead, with categorical accuracy and the AUC of the flattened
    one-vs-rest scores (Keras' micro average), under the same metric names.

    ``accumulation_steps`` > 1 averages that many steps' gradients into one
    update (Keras' gradient accumulation). Under a ``mixed_float16`` policy
    Keras wraps the optimiser in a LossScaleOptimizer itself.

    A cosine schedule spans ``epochs`` of ``steps_per_epoch`` optimizer updates
    (whole batches, however many micro-batches each is fed as).
    """
    settings: dict[str, Any] = {
        "learning_rate": learning_rate(optimizer, steps_per_epoch, epochs, accumulation_steps),
        "gradient_accumulation_steps": accumulation_steps if accumulation_steps > 1 else None,
    }
    if optimizer.weight_decay is not None:  # unset: the optimiser's own default
        settings["weight_decay"] = optimizer.weight_decay
    if optimizer.ema:  # overwritten into the model by fit's end (finalize_variable_values)
        settings |= {"use_ema": True, "ema_momentum": optimizer.ema_momentum}
    if model.outputs[0].shape[-1] == 1:
        loss: keras.losses.Loss = keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)
        accuracy: keras.metrics.Metric = keras.metrics.BinaryAccuracy(name="accuracy")
    else:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
        accuracy = keras.metrics.CategoricalAccuracy(name="accuracy")
    model.compile(
        optimizer=_OPTIMIZERS[optimizer.name](**settings),
        loss=loss,
        metrics=[accuracy, keras.metrics.AUC(name="auc")],
    )


def learning_rate(
    optimizer: OptimizerParams, steps_per_epoch: int, epochs: int, accumulation_steps: int = 1
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The constant rate, or cosine decay to 0 after a linear warm-up from 0.

    Keras' ``CosineDecay`` warms up from ``initial_learning_rate`` to
    ``warmup_target`` over ``warmup_steps``, then decays over ``decay_steps``
    more; without warm-up it decays from ``initial_learning_rate`` directly.
    """
    if optimizer.schedule == "constant" or epochs == 0:  # 0 epochs: no update to schedule
        return optimizer.learning_rate
    if steps_per_epoch < 1 or epochs < 1:
        raise ValueError(
            f"A cosine schedule needs the training's length: got {steps_per_epoch} "
            f"steps per epoch and {epochs} epochs"
        )
    warmup_steps = optimizer.warmup_epochs * steps_per_epoch
    decay_steps = epochs * steps_per_epoch - warmup_steps
    if decay_steps < 1:
        raise ValueError(f"warmup_epochs ({optimizer.warmup_epochs}) leaves no epoch to decay over")
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else optimizer.learning_rate,
        decay_steps=decay_steps,
        warmup_target=optimizer.learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )
    if accumulation_steps > 1:
        return PerUpdate(schedule, accumulation_steps)
    return schedule


@keras.saving.register_keras_serializable(package="chest_xray")
class PerUpdate(keras.optimizers.schedules.LearningRateSchedule):
    """A schedule counted in updates where Keras counts micro-batches.

    With gradient accumulation Keras hands a schedule its micro-step counter;
    update k is applied at micro-step k * steps + steps - 1, and that floored
    by ``steps`` is k: the same rate per update as with whole batches.
    """

    def __init__(self, schedule: keras.optimizers.schedules.LearningRateSchedule, steps: int):
        self.schedule = schedule
        self.steps = steps

    def __call__(self, step: Any) -> Any:
        return self.schedule(keras.ops.floor_divide(step, self.steps))

    def get_config(self) -> dict[str, Any]:
        return {"schedule": keras.saving.serialize_keras_object(self.schedule), "steps": self.steps}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PerUpdate:
        return cls(keras.saving.deserialize_keras_object(config["schedule"]), config["steps"])
