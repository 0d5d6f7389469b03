"""Project pipelines: data_processing, training, evaluation (all three: __default__); on
demand: inference, cross_validation."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

ON_DEMAND = {"inference", "cross_validation"}


def register_pipelines() -> dict[str, Pipeline]:
    """Register every pipeline found under ``chest_xray.pipelines``."""
    pipelines = find_pipelines(raise_errors=True)
    # On demand: kedro run --pipelines=inference (new images), --pipelines=cross_validation.
    pipelines["__default__"] = sum(
        (pipe for name, pipe in pipelines.items() if name not in ON_DEMAND), Pipeline([])
    )
    return pipelines
