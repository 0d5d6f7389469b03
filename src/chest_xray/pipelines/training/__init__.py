"""training: processed PNGs + split manifest -> model, training history, learning curves."""

from chest_xray.pipelines.training.pipeline import create_pipeline

__all__ = ["create_pipeline"]
