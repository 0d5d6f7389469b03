"""A Keras model in MLflow's Keras flavour: reloadable with ``mlflow.keras`` and ``pyfunc``.

TensorFlow/Keras and ``mlflow.keras`` are imported only when a model is logged.
"""

from __future__ import annotations

import contextlib
import logging
from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras
    from mlflow.models.model import ModelInfo

logger = logging.getLogger(__name__)


def log_keras_model(model: keras.Model, name: str) -> ModelInfo:
    """Log ``model`` as ``name`` in the active run, without its optimizer state."""
    import mlflow.keras

    return mlflow.keras.log_model(
        _inference_copy(model),
        name=name,
        signature=_signature(model),
        pip_requirements=_pip_requirements(),
    )


def _pip_requirements() -> list[str] | None:
    """Pinned keras + backend; given explicitly, MLflow skips a slow inference subprocess."""
    import keras

    candidates = {
        "tensorflow": ["tensorflow", "tensorflow-cpu"],
        "jax": ["jax"],
        "torch": ["torch"],
    }.get(keras.backend.backend(), [])
    requirements = [f"keras=={keras.__version__}"]
    for name in candidates:
        with contextlib.suppress(metadata.PackageNotFoundError):
            requirements.append(f"{name}=={metadata.version(name)}")
            return requirements
    return None


def _inference_copy(model: keras.Model) -> keras.Model:
    """The same weights, uncompiled: a ``.keras`` file of a compiled model carries
    Adam's two slots per weight (3x the size). ``clone_model`` would recompile it."""
    try:
        copy = type(model).from_config(model.get_config())
        copy.set_weights(model.get_weights())
    except Exception as err:  # a subclassed model may not rebuild: log it whole
        logger.warning("Logging the model with its optimizer state (%s)", err)
        return model
    return copy


def _signature(model: keras.Model) -> Any:
    """Tensor signature: float pixels 0..255 in (N, H, W, 1), P(PNEUMONIA) out."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    def spec(tensor: Any) -> TensorSpec:
        shape = (-1, *(-1 if dim is None else int(dim) for dim in tuple(tensor.shape)[1:]))
        return TensorSpec(np.dtype(str(tensor.dtype)), shape)

    return ModelSignature(
        inputs=Schema([spec(model.inputs[0])]), outputs=Schema([spec(model.outputs[0])])
    )
