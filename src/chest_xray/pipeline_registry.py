"""Project pipelines: data_processing, training, evaluation (all three: __default__), inference."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

ON_DEMAND = {"inference"}


def register_pipelines() -> dict[str, Pipeline]:
    """Register every pipeline found under ``chest_xray.pipelines``."""
    pipelines = find_pipelines(raise_errors=True)
    # inference predicts new images on demand (kedro run --pipelines=inference).
    pipelines["__default__"] = sum(
        (pipe for name, pipe in pipelines.items() if name not in ON_DEMAND), Pipeline([])
    )
    return pipelines
