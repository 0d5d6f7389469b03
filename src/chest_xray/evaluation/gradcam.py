"""Grad-CAM: where in an X-ray the network found the evidence for its answer.

A probability alone cannot show that the model looks at the lungs rather than at a
scanner's label or the patient's position; a heat map of the pixels that pushed the
score up can. This is classic Grad-CAM (Selvaraju et al., 2017): the gradients of the
class score with respect to the last convolutional feature maps, averaged over space,
weight those maps; their ReLU'd sum, upsampled to the image, is the heat map.

For the binary sigmoid output the PNEUMONIA score is the *logit* (the output layer's
pre-activation) and the NORMAL score its negation; for a softmax output (the multiclass
task) a class's score is its own logit, and the map shows the predicted class's. The
logit, not the probability: the two give the same map up to a positive factor p(1 - p)
per image, which the per-image normalisation removes, except that this factor underflows
to 0 in float32 for a confident prediction and would leave an empty map exactly where
the model is surest.

``method="hirescam"`` (Draelos & Carin, 2020) multiplies gradient and activation
element-wise instead of weighting each map by its gradient's spatial mean. That mean
suits a global-average head, whose output weights are the same at every position; the
write-up's ``flatten`` head has a different weight per position, and averaging them can
cancel the evidence: a flatten model that tells the test's blob images apart perfectly
gets empty classic maps, while its HiResCAM maps sit on the blobs.

Where the gradient is taken (the feature map, the network cut there, each backend's
gradient) is ``gradcam_network``'s; drawing the maps over the images is
``gradcam_gallery``'s. Keras is imported on first use: the other modules of
``chest_xray.evaluation`` avoid it. Nothing here knows of Kedro or MLflow.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np

from chest_xray.evaluation.gradcam_network import (
    GRADIENTS,
    Gradients,
    NetworkCut,
    cut_at_feature_map,
)

if TYPE_CHECKING:
    import keras


# Whose evidence the map shows: the class predicted at the threshold, or a fixed one.
Target = Literal["predicted", "pneumonia", "normal"]
TARGETS: tuple[str, ...] = ("predicted", "pneumonia", "normal")
# How the gradients weight the feature maps: classic Grad-CAM or element-wise HiResCAM.
Method = Literal["gradcam", "hirescam"]
METHODS: tuple[str, ...] = ("gradcam", "hirescam")


class GradCam(NamedTuple):
    """Heat maps and the probabilities of the same forward pass."""

    heatmaps: np.ndarray  # (N, H, W) float32 in [0, 1]
    probabilities: np.ndarray  # (N,) float32: the model's P(PNEUMONIA); softmax: (N, K)


def _class_maps(
    features: np.ndarray, gradients: np.ndarray, sign: np.ndarray, method: Method
) -> np.ndarray:
    """ReLU(sum_c alpha_c A^c) at feature-map resolution.

    Grad-CAM: alpha_c is the spatial mean of channel c's gradient; HiResCAM: the gradient
    itself, position by position. ``sign`` (+1 PNEUMONIA, -1 NORMAL) turns the
    gradient of the PNEUMONIA score into the target class's.
    """
    weights = gradients.mean(axis=(1, 2), keepdims=True) if method == "gradcam" else gradients
    maps = (features * weights).sum(axis=-1) * sign[:, None, None]
    return np.maximum(maps, 0.0)


def _upsample_and_normalise(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear to the image size, then each map divided by its peak; an empty map stays 0.

    Normalising after the resize makes every non-empty map peak at exactly 1 (bilinear
    sampling may miss the coarse map's maximum). A map that is 0 everywhere (no positive
    evidence for the class) is left at 0 instead of becoming 0/0.
    """
    import keras

    resized = keras.ops.image.resize(
        maps[..., None].astype(np.float32), size, interpolation="bilinear"
    )
    upsampled = np.maximum(keras.ops.convert_to_numpy(resized)[..., 0].astype(np.float64), 0.0)
    peak = upsampled.max(axis=(1, 2), keepdims=True)
    normalised = np.divide(upsampled, peak, out=np.zeros_like(upsampled), where=peak > 0.0)
    return np.clip(normalised, 0.0, 1.0).astype(np.float32)


def _pixel_batch(images: np.ndarray) -> np.ndarray:
    array = np.asarray(images)
    if array.ndim == 3:  # (N, H, W): the single grey channel left out
        array = array[..., None]
    if array.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C) or (N, H, W); got shape {array.shape}")
    return array.astype(np.float32, copy=False)


def suited_method(model: keras.Model) -> Method:
    """HiResCAM for a ``flatten`` head (per-position weights), classic Grad-CAM otherwise."""
    import keras

    flat = any(isinstance(layer, keras.layers.Flatten) for layer in model.layers)
    return "hirescam" if flat else "gradcam"


def gradcam_with_probabilities(
    model: keras.Model,
    images: np.ndarray,
    *,
    batch_size: int = 32,
    target: Target = "predicted",
    threshold: float = 0.5,
    method: Method | Literal["auto"] = "auto",
) -> GradCam:
    """Grad-CAM heat maps of ``images`` and the model's probabilities, in one pass.

    ``images`` are raw pixels as ``build_model`` takes them: (N, H, W, 1) (or (N, H, W)),
    uint8 or float on 0..255. ``target`` chooses whose evidence is mapped: the class
    predicted at ``threshold`` (``prob >= threshold`` is PNEUMONIA, as in
    ``evaluation.metrics``), or PNEUMONIA / NORMAL for every image. Each map is in [0, 1],
    its peak 1, or 0 everywhere when nothing in the image speaks for the class.
    ``method`` is classic ``"gradcam"``, ``"hirescam"`` (the better fit for the
    ``flatten`` head, module docstring) or ``"auto"``: HiResCAM for a model with a
    ``Flatten`` layer, Grad-CAM otherwise (``suited_method``).

    The network runs with ``training=False``: its augmentation layer would otherwise warp
    the images at random, and dropout / BatchNormalization would act as in training. The
    probabilities come from that same pass, so a caller need not predict again.
    """
    gradients_of = _checked(model, target, method, batch_size)
    if method == "auto":
        method = suited_method(model)
    pixels = _pixel_batch(images)
    size = (pixels.shape[1], pixels.shape[2])
    cut = cut_at_feature_map(model)
    if cut.softmax and target != "predicted":
        raise ValueError(
            f"target {target!r} names a binary class; a softmax (multiclass) model's maps "
            "show its predicted class: target='predicted'"
        )
    heatmaps, probabilities = [], []
    for start in range(0, len(pixels), batch_size):
        batch = pixels[start : start + batch_size]
        maps, prob = _batch_maps(cut, gradients_of, batch, method, _Decision(target, threshold))
        heatmaps.append(_upsample_and_normalise(maps, size))
        probabilities.append(prob)
    if not heatmaps:
        return GradCam(np.zeros((0, *size), np.float32), np.zeros(0, np.float32))
    return GradCam(np.concatenate(heatmaps), np.concatenate(probabilities))


def _checked(model: keras.Model, target: str, method: str, batch_size: int) -> Gradients:
    """Refuse bad arguments before any pixel is read; the backend's gradient function.

    The backend is checked here, not in ``GRADIENTS``' lookup mid-loop, so a caller on an
    unsupported backend learns it from a message that says what to do.
    """
    import keras

    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if method != "auto" and method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    backend = keras.backend.backend()
    if backend not in GRADIENTS:
        raise NotImplementedError(
            f"Grad-CAM is implemented for the tensorflow, jax and torch Keras backends, not "
            f"{backend!r}; run with KERAS_BACKEND=tensorflow"
        )
    return GRADIENTS[backend]


class _Decision(NamedTuple):
    """Whose evidence a binary model's map shows: ``target``, at ``threshold``."""

    target: Target
    threshold: float


def _batch_maps(
    cut: NetworkCut,
    gradients_of: Gradients,
    pixels: np.ndarray,
    method: Method,
    decision: _Decision,
) -> tuple[np.ndarray, np.ndarray]:
    """One batch's class maps at feature-map resolution, and its probabilities.

    A softmax model's map is its most probable class's evidence (no threshold applies):
    the class is read from a first pass, then the gradient taken of that class's logit.
    """
    import keras

    features = cut.features(pixels, training=False)
    if cut.softmax:
        _, first = cut.split(cut.tail(features, training=False))
        prob = keras.ops.convert_to_numpy(first).astype(np.float32)
        gradients, _ = gradients_of(replace(cut, column=prob.argmax(axis=1)), features)
        sign = np.ones(len(prob))
    else:
        gradients, probability = gradients_of(cut, features)
        prob = keras.ops.convert_to_numpy(probability).reshape(-1).astype(np.float32)
        sign = _sign(prob, decision.target, decision.threshold)
    maps = _class_maps(
        keras.ops.convert_to_numpy(features).astype(np.float64),
        keras.ops.convert_to_numpy(gradients).astype(np.float64),
        sign,
        method,
    )
    return maps, prob


def _sign(prob: np.ndarray, target: Target, threshold: float) -> np.ndarray:
    """+1 where the map is PNEUMONIA's evidence, -1 where it is NORMAL's."""
    if target == "predicted":
        return np.where(prob >= threshold, 1.0, -1.0)
    return np.full(prob.shape, 1.0 if target == "pneumonia" else -1.0)


def gradcam(
    model: keras.Model,
    images: np.ndarray,
    *,
    batch_size: int = 32,
    target: Target = "predicted",
    threshold: float = 0.5,
    method: Method | Literal["auto"] = "auto",
) -> np.ndarray:
    """(N, H, W) float32 heat maps in [0, 1]; see ``gradcam_with_probabilities``."""
    return gradcam_with_probabilities(
        model, images, batch_size=batch_size, target=target, threshold=threshold, method=method
    ).heatmaps
