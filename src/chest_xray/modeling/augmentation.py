"""Train-time augmentation: the write-up's random transforms as one affine warp per image.

The write-up used Keras' legacy ``ImageDataGenerator``, which draws a rotation,
shift, shear, zoom and flip per image, composes them into one matrix and
resamples the image once. Chaining Keras' stock ``RandomRotation``,
``RandomTranslation``, ``RandomShear`` and ``RandomZoom`` layers instead
resamples every image four times: four times the work (docs/benchmarks.md,
2a) and
four rounds of bilinear blur. ``RandomAffine`` composes the same draws into one
matrix and warps once with ``keras.ops.image.affine_transform``, so it stays
backend-neutral (TensorFlow, JAX, PyTorch) like the rest of the model.

Mapping from ``ImageDataGenerator`` (the write-up's settings in brackets):

- ``rotation_range`` [40] -> angle uniform in +-``rotation_degrees``.
- ``width_shift_range`` / ``height_shift_range`` [0.2] -> shift uniform in
  +-fraction of the width / height, in the image's own axes.
- ``shear_range`` [0.2] is an angle in *degrees* there (0.2 degrees is a slope of
  0.0035, practically nothing); here ``shear`` is the slope itself, uniform in
  +-``shear``, x moving with y (see ``AugmentationParams``).
- ``zoom_range`` [0.2] -> x and y scale drawn independently in [0.8, 1.2]; as in
  the legacy generator the scale maps output to input coordinates, so 1.2 shows
  more of the image (zooms out).
- ``horizontal_flip`` -> mirror left-right with probability 1/2.
- ``fill_mode`` [``nearest``] and bilinear interpolation, as the legacy
  generator's default (spline order 1).

Brightness and contrast (not in the write-up, off by default) are Keras' own
``RandomBrightness`` / ``RandomContrast`` after the warp; gamma (off by default)
is ``RandomGamma`` here, as Keras has none.
"""

from __future__ import annotations

import math
from typing import Any, get_args

import keras

from chest_xray.modeling.params import AugmentationParams, FillMode

FILL_MODES: tuple[str, ...] = get_args(FillMode)
# The layer's name in the model; ``model.without_augmentation`` drops it by name.
AUGMENTATION_LAYER = "augmentation"
# Pixels as the augmentation sees them: build_model rescales 0..255 to 0..1 first.
INTENSITY_RANGE: tuple[float, float] = (0.0, 1.0)


def affine_transforms(
    *,
    height: Any,
    width: Any,
    angle: Any,
    shear: Any,
    zoom_x: Any,
    zoom_y: Any,
    shift_x: Any,
    shift_y: Any,
    flip: Any,
) -> Any:
    """(N, 8) projective rows for ``keras.ops.image.affine_transform``, one per image.

    Each row maps an output pixel p = (x, y) to the input point
    ``c + R(angle) @ Shear(shear) @ diag(zoom_x, zoom_y) @ (F(p) - c) + (shift_x, shift_y)``
    where c is the image centre, F mirrors x about it when ``flip`` is -1 (1: no
    flip) and the shifts are in pixels. All arguments but ``height``/``width``
    are (N,) float tensors.
    """
    ops = keras.ops
    cos, sin = ops.cos(angle), ops.sin(angle)
    a0 = cos * zoom_x * flip
    a1 = (cos * shear - sin) * zoom_y
    b0 = sin * zoom_x * flip
    b1 = (sin * shear + cos) * zoom_y
    cx = (ops.cast(width, "float32") - 1.0) / 2.0
    cy = (ops.cast(height, "float32") - 1.0) / 2.0
    a2 = cx - a0 * cx - a1 * cy + shift_x
    b2 = cy - b0 * cx - b1 * cy + shift_y
    zeros = ops.zeros_like(a0)
    return ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


@keras.saving.register_keras_serializable(package="chest_xray")
class RandomAffine(keras.layers.Layer):
    """Random rotation, shift, shear, zoom and horizontal flip, resampled once.

    Like Keras' random image layers it transforms only when ``training`` is
    true, and a direct call that leaves ``training`` unset counts as training.
    Inputs are (N, H, W, C) float images (channels last).
    """

    def __init__(
        self,
        *,
        rotation_degrees: float = 0.0,
        width_shift: float = 0.0,
        height_shift: float = 0.0,
        shear: float = 0.0,
        zoom: float = 0.0,
        horizontal_flip: bool = False,
        fill_mode: str = "nearest",
        interpolation: str = "bilinear",
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if fill_mode not in FILL_MODES:
            raise ValueError(f"fill_mode must be one of {FILL_MODES}, got {fill_mode!r}")
        for name, value in (
            ("rotation_degrees", rotation_degrees),
            ("width_shift", width_shift),
            ("height_shift", height_shift),
            ("shear", shear),
            ("zoom", zoom),
        ):
            if value < 0:
                raise ValueError(f"{name} must be >= 0 (it is a +- range), got {value}")
        self.rotation_degrees = float(rotation_degrees)
        self.width_shift = float(width_shift)
        self.height_shift = float(height_shift)
        self.shear = float(shear)
        self.zoom = float(zoom)
        self.horizontal_flip = bool(horizontal_flip)
        self.fill_mode = fill_mode
        self.interpolation = interpolation
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def random_transforms(self, batch: Any, height: Any, width: Any) -> Any:
        """Draw one transform per image: the (N, 8) rows ``call`` warps with."""

        def uniform(low: float, high: float) -> Any:
            return keras.random.uniform((batch,), minval=low, maxval=high, seed=self.seed_generator)

        float_height = keras.ops.cast(height, "float32")
        float_width = keras.ops.cast(width, "float32")
        radians = math.radians(self.rotation_degrees)
        flip = (
            keras.ops.where(uniform(0.0, 1.0) < 0.5, -1.0, 1.0)
            if self.horizontal_flip
            else keras.ops.ones((batch,))
        )
        return affine_transforms(
            height=height,
            width=width,
            angle=uniform(-radians, radians),
            shear=uniform(-self.shear, self.shear),
            zoom_x=uniform(1.0 - self.zoom, 1.0 + self.zoom),
            zoom_y=uniform(1.0 - self.zoom, 1.0 + self.zoom),
            shift_x=uniform(-self.width_shift, self.width_shift) * float_width,
            shift_y=uniform(-self.height_shift, self.height_shift) * float_height,
            flip=flip,
        )

    def call(self, inputs: Any, training: bool | None = True) -> Any:
        if training is False:
            return inputs
        shape = keras.ops.shape(inputs)
        transforms = self.random_transforms(shape[0], shape[1], shape[2])
        return keras.ops.image.affine_transform(
            inputs,
            keras.ops.cast(transforms, inputs.dtype),
            interpolation=self.interpolation,
            fill_mode=self.fill_mode,
            data_format="channels_last",
        )

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "rotation_degrees": self.rotation_degrees,
            "width_shift": self.width_shift,
            "height_shift": self.height_shift,
            "shear": self.shear,
            "zoom": self.zoom,
            "horizontal_flip": self.horizontal_flip,
            "fill_mode": self.fill_mode,
            "interpolation": self.interpolation,
            "seed": self.seed,
        }


def build_augmentation(
    params: AugmentationParams, seed: int | None = None
) -> keras.layers.Layer | None:
    """The configured augmentation as one layer named ``augmentation``, or None.

    None (augmentation disabled, or every transform set to 0 / False) keeps
    inert layers out of the model. Without brightness, contrast or gamma the layer is
    the ``RandomAffine`` itself; with them, a ``Sequential`` of the warp and
    Keras' intensity layers, so ``model.without_augmentation`` still drops the
    whole of it by its one name.
    """
    if not params.enabled:
        return None
    geometric = _random_affine(params, seed)
    intensity = _intensity_layers(params, seed)
    if not intensity:
        return geometric
    layers = [geometric, *intensity] if geometric is not None else intensity
    return keras.Sequential(layers, name=AUGMENTATION_LAYER)


def _random_affine(params: AugmentationParams, seed: int | None) -> RandomAffine | None:
    """The warp, named ``augmentation`` (the whole augmentation when it stands alone)."""
    if not (
        params.rotation_degrees
        or params.width_shift
        or params.height_shift
        or params.shear
        or params.zoom
        or params.horizontal_flip
    ):
        return None
    return RandomAffine(
        rotation_degrees=params.rotation_degrees,
        width_shift=params.width_shift,
        height_shift=params.height_shift,
        shear=params.shear,
        zoom=params.zoom,
        horizontal_flip=params.horizontal_flip,
        fill_mode=params.fill_mode,
        seed=seed,
        # Pixel maths in float32 even under mixed_float16 (see model._PIXEL_DTYPE).
        dtype="float32",
        name=AUGMENTATION_LAYER,
    )


def _intensity_layers(params: AugmentationParams, seed: int | None) -> list[keras.layers.Layer]:
    """Keras' RandomBrightness / RandomContrast for the configured (non-zero) ranges.

    The model rescales before it augments, so pixels are in [0, 1] here: that is
    the ``value_range`` (the layers' default is 0..255), the brightness shift is
    a fraction of it and both layers clip to it. Each layer gets its own seed,
    so brightness and contrast draws are not the same random numbers.
    """
    layers: list[keras.layers.Layer] = []
    if params.brightness:
        layers.append(
            keras.layers.RandomBrightness(
                params.brightness,
                value_range=INTENSITY_RANGE,
                seed=None if seed is None else seed + 1,
                dtype="float32",
                name="brightness",
            )
        )
    if params.contrast:
        layers.append(
            keras.layers.RandomContrast(
                params.contrast,
                value_range=INTENSITY_RANGE,
                seed=None if seed is None else seed + 2,
                dtype="float32",
                name="contrast",
            )
        )
    if params.gamma:
        layers.append(
            RandomGamma(
                params.gamma, seed=None if seed is None else seed + 3, dtype="float32", name="gamma"
            )
        )
    return layers


@keras.saving.register_keras_serializable(package="chest_xray")
class RandomGamma(keras.layers.Layer):
    """``x ** g`` per image, pixels in [0, 1], ``log g`` uniform in +-log(1 + ``gamma``).

    Log-uniform, so darkening and brightening the mid-tones are equally likely
    (g = 1.5 and g = 1 / 1.5 as often). Only in training; identity otherwise.
    """

    def __init__(self, gamma: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.gamma = gamma
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        if not training or not self.gamma:
            return inputs
        bound = math.log1p(self.gamma)
        shape = (keras.ops.shape(inputs)[0], 1, 1, 1)
        log_gamma = keras.random.uniform(shape, -bound, bound, seed=self.generator)
        clipped = keras.ops.clip(inputs, 0.0, 1.0)
        return keras.ops.power(clipped, keras.ops.exp(log_gamma))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "gamma": self.gamma, "seed": self.seed}
