"""data_processing: raw Kaggle download -> joined index, PNGs, split manifest, summary."""

from chest_xray.pipelines.data_processing.pipeline import create_pipeline

__all__ = ["create_pipeline"]
