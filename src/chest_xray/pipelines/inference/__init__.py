"""inference: a folder of new X-rays predicted with a packaged model, on demand."""

from chest_xray.pipelines.inference.pipeline import create_pipeline

__all__ = ["create_pipeline"]
