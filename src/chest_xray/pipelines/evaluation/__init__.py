"""evaluation: saved model + PNGs + split manifest -> predictions, test metrics, figures."""

from chest_xray.pipelines.evaluation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
