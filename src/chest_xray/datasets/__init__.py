"""Custom Kedro datasets (only where no kedro-datasets class fits; each module says why)."""

from chest_xray.datasets.atomic_files import AtomicCSVDataset, AtomicJSONDataset
from chest_xray.datasets.file_listing_dataset import FileListingDataset
from chest_xray.datasets.image_file_dataset import ImageFileDataset
from chest_xray.datasets.keras_model_dataset import KerasModelDataset
from chest_xray.datasets.optional_dataset import OptionalDataset
from chest_xray.datasets.servable_model_dataset import ServableModelDataset

__all__ = [
    "AtomicCSVDataset",
    "AtomicJSONDataset",
    "FileListingDataset",
    "ImageFileDataset",
    "KerasModelDataset",
    "OptionalDataset",
    "ServableModelDataset",
]
