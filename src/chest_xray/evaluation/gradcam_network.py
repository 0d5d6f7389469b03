"""Where Grad-CAM takes its gradient: the last feature map, the network cut there, the backend.

``gradcam`` needs the gradient of a class score with respect to the last convolutional
feature maps. This module finds those maps in the model's own graph (``last_conv_layer``),
cuts the network there into the part before them and the part after
(``cut_at_feature_map``), and takes the gradient with the Keras backend in use
(``GRADIENTS``). The maps themselves, from these gradients, are ``gradcam``'s.

Keras is imported on first use, as in ``gradcam``. Nothing here knows of Kedro or MLflow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras

# Layer classes that may follow the last convolution inside its block and still belong
# to its feature map (build_model's batch_norm block: conv -> BatchNorm -> ReLU -> pool).
_BLOCK_FOLLOWERS = ("BatchNormalization", "Activation", "ReLU")


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


# --------------------------------------------------------------------------- the cut


@dataclass(frozen=True)
class NetworkCut:
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


def cut_at_feature_map(model: keras.Model) -> NetworkCut:
    """``model`` cut at its last feature map; refused unless its output is one sigmoid
    probability per image or a softmax Dense layer, the two heads a score is defined for."""
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
        return NetworkCut(features, keras.Model(feature_map, probability), None)
    score_input = chain[-2][1]  # the output layer's input, in this graph
    return NetworkCut(features, keras.Model(feature_map, [score_input, probability]), output_layer)


# Per backend: (parts, feature map) -> (d sum(score) / d feature map, probabilities). The
# gradient of the batch's summed score is each image's own gradient, since with
# training=False (BatchNormalization on its moving statistics) images do not interact.
Gradients = Callable[[NetworkCut, Any], tuple[Any, Any]]


def _tensorflow_gradients(parts: NetworkCut, features: Any) -> tuple[Any, Any]:
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(features)
        score_input, probability = parts.split(parts.tail(features, training=False))
        total = tf.reduce_sum(parts.score(score_input))
    return tape.gradient(total, features), probability


def _jax_gradients(parts: NetworkCut, features: Any) -> tuple[Any, Any]:
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


def _torch_gradients(parts: NetworkCut, features: Any) -> tuple[Any, Any]:
    """Untested here (torch is not installed in the project's environment)."""
    import torch

    feature_map = features.detach().requires_grad_(True)
    score_input, probability = parts.split(parts.tail(feature_map, training=False))
    (gradients,) = torch.autograd.grad(parts.score(score_input).sum(), feature_map)
    return gradients, probability.detach()


GRADIENTS: dict[str, Gradients] = {
    "tensorflow": _tensorflow_gradients,
    "jax": _jax_gradients,
    "torch": _torch_gradients,
}
