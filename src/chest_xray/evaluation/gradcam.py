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

Keras is imported on first use: the other modules of ``chest_xray.evaluation`` avoid it,
and the overlay and figure helpers here work on arrays alone. Nothing here knows of
Kedro or MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from io import BytesIO
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from PIL import Image

from chest_xray.data.figures import RIGHT_COLOUR, WRONG_COLOUR, message_figure, new_figure
from chest_xray.evaluation.plots import _as_displayable

if TYPE_CHECKING:
    import keras

# Whose evidence the map shows: the class predicted at the threshold, or a fixed one.
Target = Literal["predicted", "pneumonia", "normal"]
TARGETS: tuple[str, ...] = ("predicted", "pneumonia", "normal")
# How the gradients weight the feature maps: classic Grad-CAM or element-wise HiResCAM.
Method = Literal["gradcam", "hirescam"]
METHODS: tuple[str, ...] = ("gradcam", "hirescam")

# Layer classes that may follow the last convolution inside its block and still belong
# to its feature map (build_model's batch_norm block: conv -> BatchNorm -> ReLU -> pool).
_BLOCK_FOLLOWERS = ("BatchNormalization", "Activation", "ReLU")


class GradCam(NamedTuple):
    """Heat maps and the probabilities of the same forward pass."""

    heatmaps: np.ndarray  # (N, H, W) float32 in [0, 1]
    probabilities: np.ndarray  # (N,) float32: the model's P(PNEUMONIA); softmax: (N, K)


# ------------------------------------------------------------------------------ layer


def _chain(model: keras.Model) -> list[tuple[Any, Any]]:
    """(layer, its output tensor *in this model's graph*), from the input to the output.

    ``layer.output`` will not do: it is the tensor of the layer's first call, and
    ``without_augmentation`` builds the served network from the trained one's layers, so
    each of them has been called in two graphs and ``.output`` points into the other one.
    Walking back from the model's own output along the tensors' Keras history finds the
    right tensors. Only a plain chain (one input per layer, as ``build_model`` makes) is
    walked; anything else is refused rather than guessed at.
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError("Grad-CAM needs a model with one input and one output")
    chain = []
    tensor = model.outputs[0]
    while True:
        layer, node_index, _ = tensor._keras_history
        inputs = layer._inbound_nodes[node_index].input_tensors
        if not inputs:  # the InputLayer
            break
        if len(inputs) != 1:
            raise ValueError(
                f"Grad-CAM needs a plain chain of layers; {layer.name!r} in model "
                f"{model.name!r} takes {len(inputs)} inputs"
            )
        chain.append((layer, tensor))
        tensor = inputs[0]
    return chain[::-1]


def _feature_map(chain: list[tuple[Any, Any]], model_name: str) -> int:
    """Index in ``chain`` of the last conv block's feature map (see ``last_conv_layer``)."""
    import keras

    convs = [i for i, (layer, _) in enumerate(chain) if isinstance(layer, keras.layers.Conv2D)]
    if not convs:
        raise ValueError(
            f"Model {model_name!r} has no Conv2D layer of its own: Grad-CAM needs a "
            "convolutional feature map to weight"
        )
    index = convs[-1]
    while index + 1 < len(chain) and type(chain[index + 1][0]).__name__ in _BLOCK_FOLLOWERS:
        index += 1
    return index


def last_conv_layer(model: keras.Model) -> keras.layers.Layer:
    """The layer whose output is the last convolution block's feature map, before pooling.

    That is the last ``Conv2D``, or, when it feeds a BatchNormalization and/or an
    activation (``build_model`` with ``batch_norm``: conv -> BN -> ReLU -> pool), the
    last of those. Why there: Grad-CAM wants the last convolutional maps, which carry the
    most class-specific features while keeping a spatial layout, and before the pooling
    they have the highest resolution the block offers. Why past BN/ReLU: the rectified
    maps are what the rest of the network sees (without batch_norm the ReLU is inside the
    ``Conv2D``), so both variants of the network are explained at the same point.

    Only the model's own layers are searched (``build_model``'s network is a plain
    chain); a convolution inside a nested model is not found.
    """
    chain = _chain(model)
    return chain[_feature_map(chain, model.name)][0]


# ---------------------------------------------------------------------------- heat maps


@dataclass(frozen=True)
class _Parts:
    """The network cut at the feature map, so the gradient is taken with respect to it.

    ``features`` maps pixels to the feature map; ``tail`` maps the feature map to
    ``[score input, probability]``, where the score input is the output layer's input
    (the logit is computed from it with that layer's own weights), or, for an output
    layer that is not a one-unit sigmoid Dense, to the probability alone, which is then
    the score (a model cut from intermediate tensors cannot list one output twice).
    """

    features: keras.Model
    tail: keras.Model
    head: keras.layers.Dense | None
    # Softmax head: the class whose logit is each image's score (N,), set per batch.
    column: np.ndarray | None = None

    @property
    def softmax(self) -> bool:
        return self.head is not None and int(self.head.units) > 1

    def split(self, tail_output: Any) -> tuple[Any, Any]:
        """The tail's output as (score input, probability)."""
        if self.head is None:
            return tail_output, tail_output
        score_input, probability = tail_output
        return score_input, probability

    def score(self, score_input: Any) -> Any:
        """Per-image PNEUMONIA score (N,): the logit, or the probability as a fallback."""
        import keras

        ops = keras.ops
        if self.head is None:
            return ops.reshape(ops.cast(score_input, "float32"), (-1,))
        logit = ops.matmul(ops.cast(score_input, "float32"), ops.cast(self.head.kernel, "float32"))
        if self.head.use_bias:
            logit = logit + ops.cast(self.head.bias, "float32")
        if self.column is not None:  # softmax: each image's chosen class's logit
            chosen = ops.one_hot(ops.convert_to_tensor(self.column), int(self.head.units))
            return ops.sum(logit * chosen, axis=1)
        return ops.reshape(logit, (-1,))


def _parts(model: keras.Model) -> _Parts:
    import keras

    chain = _chain(model)
    feature_map = chain[_feature_map(chain, model.name)][1]
    probability = model.outputs[0]
    output_layer = chain[-1][0]
    is_softmax_dense = (
        isinstance(output_layer, keras.layers.Dense)
        and output_layer.units > 1
        and output_layer.activation is keras.activations.softmax
        and len(chain) > 1
    )
    if tuple(probability.shape[1:]) != (1,) and not is_softmax_dense:
        raise ValueError(
            f"Grad-CAM needs one sigmoid probability per image, or a softmax Dense output; "
            f"the model outputs shape {tuple(probability.shape)}"
        )
    is_sigmoid_dense = (
        isinstance(output_layer, keras.layers.Dense)
        and output_layer.units == 1
        and output_layer.activation is keras.activations.sigmoid
        and len(chain) > 1
    )
    # Keras 3 builds a functional model from intermediate tensors (it clones the graph
    # between them), so the cut needs no knowledge of the layers in between.
    features = keras.Model(model.inputs[0], feature_map)
    if not (is_sigmoid_dense or is_softmax_dense):
        return _Parts(features, keras.Model(feature_map, probability), None)
    score_input = chain[-2][1]  # the output layer's input, in this graph
    return _Parts(features, keras.Model(feature_map, [score_input, probability]), output_layer)


# Per backend: (parts, feature map) -> (d sum(score) / d feature map, probabilities). The
# gradient of the batch's summed score is each image's own gradient, since with
# training=False (BatchNormalization on its moving statistics) images do not interact.
_Gradients = Callable[[_Parts, Any], tuple[Any, Any]]


def _tensorflow_gradients(parts: _Parts, features: Any) -> tuple[Any, Any]:
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(features)
        score_input, probability = parts.split(parts.tail(features, training=False))
        total = tf.reduce_sum(parts.score(score_input))
    return tape.gradient(total, features), probability


def _jax_gradients(parts: _Parts, features: Any) -> tuple[Any, Any]:
    """Untested here (jax is not installed in the project's environment)."""
    import jax
    import jax.numpy as jnp

    trainable = [v.value for v in parts.tail.trainable_variables]
    non_trainable = [v.value for v in parts.tail.non_trainable_variables]

    def total(feature_map: Any) -> tuple[Any, Any]:
        outputs, _ = parts.tail.stateless_call(
            trainable, non_trainable, feature_map, training=False
        )
        score_input, probability = parts.split(outputs)
        return jnp.sum(parts.score(score_input)), probability

    (_, probability), gradients = jax.value_and_grad(total, has_aux=True)(features)
    return gradients, probability


def _torch_gradients(parts: _Parts, features: Any) -> tuple[Any, Any]:
    """Untested here (torch is not installed in the project's environment)."""
    import torch

    feature_map = features.detach().requires_grad_(True)
    score_input, probability = parts.split(parts.tail(feature_map, training=False))
    (gradients,) = torch.autograd.grad(parts.score(score_input).sum(), feature_map)
    return gradients, probability.detach()


_GRADIENTS: dict[str, _Gradients] = {
    "tensorflow": _tensorflow_gradients,
    "jax": _jax_gradients,
    "torch": _torch_gradients,
}


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
    import keras

    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if method == "auto":
        method = suited_method(model)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    backend = keras.backend.backend()
    if backend not in _GRADIENTS:
        raise NotImplementedError(
            f"Grad-CAM is implemented for the tensorflow, jax and torch Keras backends, not "
            f"{backend!r}; run with KERAS_BACKEND=tensorflow"
        )
    pixels = _pixel_batch(images)
    size = (pixels.shape[1], pixels.shape[2])
    parts = _parts(model)
    if parts.softmax and target != "predicted":
        raise ValueError(
            f"target {target!r} names a binary class; a softmax (multiclass) model's maps "
            "show its predicted class: target='predicted'"
        )
    heatmaps, probabilities = [], []
    for start in range(0, len(pixels), batch_size):
        features = parts.features(pixels[start : start + batch_size], training=False)
        if parts.softmax:  # the most probable class's evidence; no threshold applies
            _, first = parts.split(parts.tail(features, training=False))
            prob = keras.ops.convert_to_numpy(first).astype(np.float32)
            column = prob.argmax(axis=1)
            gradients, _ = _GRADIENTS[backend](replace(parts, column=column), features)
            sign = np.ones(len(prob))
        else:
            gradients, probability = _GRADIENTS[backend](parts, features)
            prob = keras.ops.convert_to_numpy(probability).reshape(-1).astype(np.float32)
            sign = _sign(prob, target, threshold)
        maps = _class_maps(
            keras.ops.convert_to_numpy(features).astype(np.float64),
            keras.ops.convert_to_numpy(gradients).astype(np.float64),
            sign,
            method,
        )
        heatmaps.append(_upsample_and_normalise(maps, size))
        probabilities.append(prob)
    if not heatmaps:
        return GradCam(np.zeros((0, *size), np.float32), np.zeros(0, np.float32))
    return GradCam(np.concatenate(heatmaps), np.concatenate(probabilities))


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


# ------------------------------------------------------------------------------ overlays


def _grey_uint8(image: np.ndarray) -> np.ndarray:
    """(H, W) uint8 on the scale the gallery shows it (``plots._as_displayable``)."""
    array, vmin, vmax = _as_displayable(image)
    if array.ndim != 2:
        raise ValueError(f"image must be (H, W) or (H, W, 1); got shape {np.shape(image)}")
    if array.dtype == np.uint8:
        return array
    values = array.astype(np.float64)
    if vmin is None or vmax is None:  # an unknown range: stretch it, as imshow would
        vmin = float(values.min()) if values.size else 0.0
        vmax = float(values.max()) if values.size else 1.0
    span = vmax - vmin if vmax > vmin else 1.0
    return np.rint(np.clip((values - vmin) / span, 0.0, 1.0) * 255.0).astype(np.uint8)


def overlay(
    image: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.4, colormap: str = "jet"
) -> np.ndarray:
    """The heat map in ``colormap`` colours blended over the grey image: (H, W, 3) uint8.

    A uniform blend (``alpha`` heat, ``1 - alpha`` image) rather than a heat-weighted one
    keeps the colour scale readable everywhere: cold regions show as blue, not as bare
    image that could be mistaken for "not analysed". ``alpha=0`` gives the image alone.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    grey = _grey_uint8(image)
    heat = np.asarray(heatmap, dtype=np.float64)
    if heat.shape != grey.shape:
        raise ValueError(f"heatmap shape {heat.shape} does not match image shape {grey.shape}")
    colours = colormaps[colormap](np.clip(heat, 0.0, 1.0))[..., :3] * 255.0
    rgb = np.repeat(grey[..., None].astype(np.float64), 3, axis=-1)
    return np.rint((1.0 - alpha) * rgb + alpha * colours).astype(np.uint8)


def overlay_png(
    image: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.4, colormap: str = "jet"
) -> bytes:
    """``overlay`` encoded as an RGB PNG, for saving one file per image."""
    buffer = BytesIO()
    Image.fromarray(overlay(image, heatmap, alpha=alpha, colormap=colormap), "RGB").save(
        buffer, format="PNG"
    )
    return buffer.getvalue()


# ------------------------------------------------------------------------------- gallery


def gradcam_gallery_figure(
    images: Sequence[np.ndarray],
    heatmaps: Sequence[np.ndarray],
    titles: Sequence[str],
    *,
    columns: int = 4,
    wrong: Sequence[bool] | None = None,
) -> Figure:
    """Grid of examples, each the grey image beside its Grad-CAM overlay, under one title.

    ``columns`` counts examples (two panels each) per row. Titles are e.g.
    ``plots.gallery_title``; ``wrong`` marks misclassified examples, whose titles turn
    red as in ``prediction_gallery_figure``. The figure has exactly two axes per example.
    """
    n = len(images)
    if not len(heatmaps) == len(titles) == n:
        raise ValueError("images, heatmaps and titles must have the same length")
    if wrong is not None and len(wrong) != n:
        raise ValueError("wrong must have one entry per image")
    if columns < 1:
        raise ValueError("columns must be at least 1")
    if n == 0:
        return message_figure("Grad-CAM", "no images")
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    fig = new_figure(6.4 * cols, 3.6 * rows)
    cells = fig.subfigures(rows, cols, squeeze=False).ravel()
    for index, (cell, image, heatmap, title) in enumerate(
        zip(cells, images, heatmaps, titles, strict=False)
    ):
        left, right = cell.subplots(1, 2)
        array, vmin, vmax = _as_displayable(image)
        left.imshow(array, cmap="gray", vmin=vmin, vmax=vmax)
        right.imshow(overlay(image, heatmap))
        right.set_title("Grad-CAM", fontsize=8)
        left.set_axis_off()
        right.set_axis_off()
        colour = WRONG_COLOUR if wrong is not None and wrong[index] else RIGHT_COLOUR
        cell.suptitle(title, color=colour, fontsize=9)
    return fig
