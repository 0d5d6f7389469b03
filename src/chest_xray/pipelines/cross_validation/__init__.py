"""cross_validation: k patient-grouped folds of TRAIN, each trained and scored, then combined."""

from chest_xray.pipelines.cross_validation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
