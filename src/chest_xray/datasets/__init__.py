"""Custom Kedro datasets (only where no kedro-datasets class fits)."""

from chest_xray.datasets.image_file_dataset import ImageFileDataset

__all__ = ["ImageFileDataset"]
