"""The evaluation pipeline's shape, and how the registry puts the three pipelines together.

Its real run on a trained model is in tests/pipelines/training/test_pipeline.py (one
training serves both)."""

from __future__ import annotations

import pytest
from kedro.framework.project import configure_project

from chest_xray.pipeline_registry import register_pipelines
from chest_xray.pipelines.evaluation import create_pipeline


def test_evaluation_pipeline_scores_a_saved_model() -> None:
    pipeline = create_pipeline()
    assert {node.name for node in pipeline.nodes} == {
        "predict",
        "evaluate",
        "plot_evaluation",
        "plot_prediction_gallery",
    }
    assert all(node.tags == {"evaluation"} for node in pipeline.nodes)
    # It starts from what training and data_processing persisted, nothing in memory.
    assert pipeline.inputs() == {
        "model",
        "processed_images",
        "split_manifest",
        "params:training",
        "params:evaluation",
    }


@pytest.fixture(autouse=True)
def _configured() -> None:
    """find_pipelines needs the package configured, as ``kedro`` does at start."""
    configure_project("chest_xray")


def test_node_names_are_their_function_names() -> None:
    for name, pipeline in register_pipelines().items():
        for node in pipeline.nodes:
            assert node.name == node.func.__name__, (name, node.name)


def test_default_runs_data_processing_training_and_evaluation() -> None:
    pipelines = register_pipelines()
    assert set(pipelines) == {"__default__", "data_processing", "training", "evaluation"}
    parts = pipelines["data_processing"] + pipelines["training"] + pipelines["evaluation"]
    assert {node.name for node in pipelines["__default__"].nodes} == {
        node.name for node in parts.nodes
    }
