"""Custom Kedro datasets (only where no kedro-datasets class fits; each module says why).

The classes are imported on first use (PEP 562), not with the package: every ``kedro``
command registers every pipeline, and the inference nodes need ``FileListingDataset``,
which would otherwise pull in ``KerasModelDataset`` and so Keras and TensorFlow (about
3 seconds and 0.5 GB) for a run that stops on a bad parameter or prepares data only.
The catalog names a class as ``chest_xray.datasets.<Class>``, which resolves here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chest_xray.datasets.atomic_files import AtomicCSVDataset, AtomicJSONDataset
    from chest_xray.datasets.file_listing_dataset import FileListingDataset
    from chest_xray.datasets.image_file_dataset import ImageFileDataset
    from chest_xray.datasets.keras_model_dataset import KerasModelDataset
    from chest_xray.datasets.optional_dataset import OptionalDataset
    from chest_xray.datasets.servable_model_dataset import ServableModelDataset

# Each class and the module that holds it.
_MODULES = {
    "AtomicCSVDataset": "atomic_files",
    "AtomicJSONDataset": "atomic_files",
    "FileListingDataset": "file_listing_dataset",
    "ImageFileDataset": "image_file_dataset",
    "KerasModelDataset": "keras_model_dataset",
    "OptionalDataset": "optional_dataset",
    "ServableModelDataset": "servable_model_dataset",
}

__all__ = [
    "AtomicCSVDataset",
    "AtomicJSONDataset",
    "FileListingDataset",
    "ImageFileDataset",
    "KerasModelDataset",
    "OptionalDataset",
    "ServableModelDataset",
]


def __getattr__(name: str) -> Any:
    """The class ``name``, its module imported now (once: Python caches modules)."""
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
