"""training: processed PNGs + split manifest -> model, predictions, metrics, plots."""

from chest_xray.pipelines.training.pipeline import create_pipeline

__all__ = ["create_pipeline"]
