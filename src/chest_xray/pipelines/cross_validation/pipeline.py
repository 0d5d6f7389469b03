"""cross_validation: fold TRAIN, train and score every fold, combine the folds.

``assign_folds`` gives every TRAIN image a fold. Each fold ``fold_<i>`` is a Kedro
namespace holding ``prepare_fold`` and the training and evaluation pipelines' own
nodes (``train_model``, ``plot_training_curves``, ``predict``, ``evaluate``), so:

- ``kedro run --pipelines=cross_validation --namespaces=fold_3`` runs one fold;
- ``--only-missing-outputs`` resumes a half-done cross-validation;
- the folds are independent branches a parallel runner or an orchestrator can fan out;
- kedro-viz draws each fold as one collapsible group.

Their datasets are ``fold_<i>.<name>`` (catalog factories in
``conf/base/catalog_cross_validation.yml``). ``aggregate_folds`` and
``plot_fold_roc_curves`` read every fold's ``test_metrics`` and ``test_predictions``;
``predict_with_fold_models`` and ``evaluate_fold_ensemble`` use the k fold models as
one classifier (the mean of their probabilities) on the data_processing test split.
The number of folds comes from ``cross_validation.folds`` (``fold_count``).
It reads the PNGs and split manifest of ``data_processing``: run that first, or
together (``--pipelines=data_processing,cross_validation``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import partial, update_wrapper
from typing import Any

from kedro.pipeline import Node, Pipeline

from chest_xray.data.folds import fold_name
from chest_xray.pipelines.cross_validation.nodes import (
    aggregate_folds,
    assign_folds,
    evaluate_fold_ensemble,
    plot_fold_roc_curves,
    predict_with_fold_models,
    prepare_fold,
)
from chest_xray.pipelines.evaluation.pipeline import create_pipeline as evaluation
from chest_xray.pipelines.fold_count import fold_count
from chest_xray.pipelines.training.pipeline import create_pipeline as training

# The fold's own training parameters (its checkpoint folder) replace params:training.
TRAINING_PARAMS = "params:training"
FOLD_TRAINING_PARAMS = "training_params"


def _with_fold_params(pipeline: Pipeline) -> list[Node]:
    """The pipeline's nodes, reading the fold's training parameters instead of params:training.

    Kedro maps parameters only to parameters, so each node is rebuilt with the
    same function, name and outputs and that one input renamed.
    """
    return [
        Node(
            func=node.func,
            inputs=[
                FOLD_TRAINING_PARAMS if name == TRAINING_PARAMS else name for name in node.inputs
            ],
            # One output is returned as itself (these nodes' functions do so), not as a list.
            outputs=node.outputs[0] if len(node.outputs) == 1 else node.outputs,
            name=node.name,
            tags=node.tags,
        )
        for node in pipeline.nodes
    ]


def _for_fold(func: Callable[..., Any], fold: int) -> Callable[..., Any]:
    """``func`` with ``fold=fold`` bound, keeping its name and type hints.

    A ``functools.partial`` (picklable, so a ParallelRunner can ship it) that
    looks like ``func``: Kedro reads the type hints to validate ``params:`` inputs
    (``TrainingParams``) and names the node after the function.
    """
    return update_wrapper(partial(func, fold=fold), func)


def fold_pipeline(fold: int) -> Pipeline:
    """Fold ``fold`` (1-based) as the namespace ``fold_<fold>``."""
    scored = training() + evaluation().only_nodes("predict", "evaluate")
    prepare = Node(
        func=_for_fold(prepare_fold, fold),
        inputs=["cv_folds", "main_split_manifest", "params:split", TRAINING_PARAMS],
        outputs=["split_manifest", FOLD_TRAINING_PARAMS],  # -> fold_<i>.split_manifest ...
        name="prepare_fold",
    )
    return Pipeline(
        [prepare, *_with_fold_params(scored)],
        namespace=fold_name(fold),
        inputs={
            "processed_images": "processed_images",
            "cv_folds": "cv_folds",
            "main_split_manifest": "split_manifest",  # the data_processing one
        },
        parameters={"params:split", TRAINING_PARAMS, "params:evaluation"},
    )


def _combine(folds: list[str]) -> list[Node]:
    """The nodes that read every fold's results.

    They name the folds' datasets as Kedro's namespaces made them
    (``fold_1.test_metrics``): Kedro warns about any dotted name in a node
    built by hand, a warning meant for names that are not namespaced.
    """
    results = [f"{fold}.test_metrics" for fold in folds] + [
        f"{fold}.test_predictions" for fold in folds
    ]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "One or more dataset names contain '.'")
        return [
            Node(
                func=aggregate_folds,
                inputs=results,
                outputs=["cv_summary", "cv_fold_metrics"],
                name="aggregate_folds",
            ),
            Node(
                func=plot_fold_roc_curves,
                inputs=results,
                outputs="cv_roc_curves_plot",
                name="plot_fold_roc_curves",
            ),
            Node(
                func=predict_with_fold_models,
                inputs=[
                    "processed_images",
                    "split_manifest",
                    TRAINING_PARAMS,
                    "params:evaluation",
                    *(f"{fold}.model" for fold in folds),
                ],
                outputs="cv_ensemble_test_predictions",
                name="predict_with_fold_models",
            ),
            Node(
                func=evaluate_fold_ensemble,
                inputs=[
                    "cv_ensemble_test_predictions",
                    "split_manifest",
                    TRAINING_PARAMS,
                    "params:evaluation",
                    *(f"{fold}.test_predictions" for fold in folds),
                ],
                outputs="cv_ensemble_test_metrics",
                name="evaluate_fold_ensemble",
            ),
        ]


def create_pipeline(**kwargs) -> Pipeline:
    folds = [fold_name(i) for i in range(1, fold_count() + 1)]
    return Pipeline(
        [
            Node(
                func=assign_folds,
                inputs=["split_manifest", "preprocessing_log", "params:cross_validation"],
                outputs="cv_folds",
                name="assign_folds",
            ),
            *(fold_pipeline(i) for i in range(1, len(folds) + 1)),
            *_combine(folds),
        ],
        tags="cross_validation",
    )
