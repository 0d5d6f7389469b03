"""Saving and loading the network as a file: Keras' native ``.keras``, older ``.h5`` read.

The project writes ``.keras`` (Keras 3's native zip: config and weights, no legacy HDF5
warning) and still reads the ``.h5`` files that earlier versions wrote. Keras' own
``save_model`` ignores ``include_optimizer`` for ``.keras`` and always stores a compiled
model's optimizer state (Adam's two moments: about three times the weights of a flatten
head); ``save_network`` leaves it out by saving an uncompiled view of the same layers.

``load_network`` registers the package's custom Keras objects (``RandomAffine``,
``RandomGamma``, ``PerUpdate``) first, so a model or a compiled model that holds them loads.

Keras is imported when a function runs, not with the module: ``KerasModelDataset`` checks
a path's suffix (``SUFFIXES``) when Kedro builds the catalog, which kedro-mlflow does for
every dataset of every run, and a run that needs no model should not wait for TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

SUFFIXES = (".keras", ".h5")


def save_network(model: keras.Model, path: str | Path, *, include_optimizer: bool = True) -> None:
    """Write ``model`` to ``path`` (``.keras``, or ``.h5`` for an old reader); without
    ``include_optimizer`` the file holds the architecture and weights only."""
    import keras

    suffix = Path(path).suffix
    if suffix not in SUFFIXES:
        raise ValueError(f"A Keras model file ends in .keras or .h5, got '{path}'")
    if suffix == ".h5":
        keras.saving.save_model(model, path, include_optimizer=include_optimizer)
        return
    keras.saving.save_model(model if include_optimizer else without_optimizer(model), path)


def load_network(path: str | Path, **load_args: Any) -> keras.Model:
    """A ``.keras`` or ``.h5`` model file, with the package's custom objects known."""
    import keras

    # Imported for their side effect: @register_keras_serializable on the custom objects.
    from chest_xray.modeling import augmentation as _augmentation  # noqa: F401
    from chest_xray.modeling import model as _model  # noqa: F401

    return keras.saving.load_model(path, **load_args)


def without_optimizer(model: keras.Model) -> keras.Model:
    """The same layers (and weights, shared) as an uncompiled model: saved, it holds no
    optimizer state and no compile config. A model that was never compiled is returned
    as it is; one that is not a graph of layers (a subclassed model) too, optimizer kept."""
    import keras

    if getattr(model, "optimizer", None) is None:
        return model
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):  # a subclassed model has no graph to rebuild
        return model
    return keras.Model(inputs, outputs, name=model.name)
