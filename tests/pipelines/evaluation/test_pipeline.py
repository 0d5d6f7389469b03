"""The evaluation pipeline's shape, and how the registry puts the three pipelines together.

Its real run on a trained model is in tests/pipelines/training/test_pipeline.py (one
training serves both)."""

from __future__ import annotations

import pandas as pd
import pytest
from kedro.framework.project import configure_project

from chest_xray.params import EvaluationParams, TrainingParams
from chest_xray.pipeline_registry import register_pipelines
from chest_xray.pipelines.evaluation import create_pipeline
from chest_xray.pipelines.evaluation.nodes import evaluate, training_prevalence


def test_evaluation_pipeline_scores_a_saved_model() -> None:
    pipeline = create_pipeline()
    assert {node.name for node in pipeline.nodes} == {
        "predict",
        "evaluate",
        "plot_evaluation",
        "plot_reliability_diagram",
        "plot_prediction_gallery",
        "plot_gradcam_gallery",
        "package_model",
    }
    assert all(node.tags == {"evaluation"} for node in pipeline.nodes)
    # It starts from what training and data_processing persisted, nothing in memory.
    assert pipeline.inputs() == {
        "model",
        "processed_images",
        "split_manifest",
        "params:training",
        "params:evaluation",
        "params:preprocessing",  # the packaged model records how its images were made
    }


@pytest.fixture(autouse=True)
def _configured() -> None:
    """find_pipelines needs the package configured, as ``kedro`` does at start."""
    configure_project("chest_xray")


def test_node_names_are_their_function_names() -> None:
    for name, pipeline in register_pipelines().items():
        for node in pipeline.nodes:
            # A namespaced node (a cross-validation fold) is <namespace>.<function>.
            expected = ".".join(filter(None, [node.namespace, node.func.__name__]))
            assert node.name == expected, (name, node.name)


def test_default_runs_data_processing_training_and_evaluation() -> None:
    pipelines = register_pipelines()
    assert set(pipelines) == {
        "__default__",
        "data_processing",
        "training",
        "evaluation",
        "inference",  # on demand: not in __default__
        "cross_validation",  # on demand too
    }
    parts = pipelines["data_processing"] + pipelines["training"] + pipelines["evaluation"]
    assert {node.name for node in pipelines["__default__"].nodes} == {
        node.name for node in parts.nodes
    }


# ------------------------------------------------------------ the evaluate node's prior


def _manifest() -> pd.DataFrame:
    """Train 3/4 PNEUMONIA, validation 1/2: the two shares the prior shift could use."""
    labels = ["PNEUMONIA", "PNEUMONIA", "NORMAL", "PNEUMONIA", "NORMAL", "PNEUMONIA", "NORMAL"]
    split = ["train"] * 4 + ["validation"] * 2 + ["test"]
    return pd.DataFrame({"image_id": [f"i{n}" for n in range(7)], "split": split, "label": labels})


def _predictions(y_true: list[int], probability: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image_id": [f"p{n}" for n in range(len(y_true))],
            "label": ["PNEUMONIA" if y else "NORMAL" for y in y_true],
            "y_true": y_true,
            "probability": probability,
        }
    )


def test_training_prevalence_is_the_train_share_or_one_half_when_balanced() -> None:
    assert training_prevalence(_manifest(), TrainingParams()) == 0.75
    assert training_prevalence(_manifest(), TrainingParams(class_weight="balanced")) == 0.5
    no_train = _manifest().query("split != 'train'")
    assert training_prevalence(no_train, TrainingParams()) is None


@pytest.mark.parametrize(("target", "expected"), [(None, None), (0.5, {"from": 0.75, "to": 0.5})])
def test_evaluate_shifts_from_the_train_split_only_when_asked(
    target: float | None, expected: dict[str, float] | None
) -> None:
    validation = _predictions([0, 1], [0.2, 0.9])
    test = _predictions([0, 1, 1], [0.3, 0.6, 0.8])

    report = evaluate(
        validation, test, _manifest(), TrainingParams(), EvaluationParams(target_prevalence=target)
    )

    assert report.get("prior_shift") == expected
    # 0.6 is called positive as given, not once 0.5 means 0.75 before the shift.
    called = report["test"]["at_fixed_threshold"]["confusion_matrix"]["tp"]
    assert called == (2 if target is None else 1)


def test_evaluate_reports_calibration_fitted_on_validation() -> None:
    validation = _predictions([0, 0, 1, 1], [0.01, 0.6, 0.4, 0.99])
    test = _predictions([0, 1, 1], [0.3, 0.6, 0.8])

    report = evaluate(validation, test, _manifest(), TrainingParams(), EvaluationParams())

    calibration = report["calibration"]
    assert calibration["test"]["n"] == 3
    assert calibration["validation"]["n"] == 4
    assert calibration["temperature"] > 1.0  # confident and wrong twice on validation: warmer
    assert set(calibration["test"]) >= {"ece", "brier", "log_loss", "reliability", "binning"}
