"""evaluation: predict -> evaluate -> figures, from the saved model.

``kedro run --pipelines=evaluation`` re-evaluates the last saved model (e.g.
with another threshold rule) without training; in ``__default__`` it runs after
training, as the old ``--from-nodes=predict`` did."""

from kedro.pipeline import Node, Pipeline

from chest_xray.pipelines.evaluation.nodes import (
    evaluate,
    package_model,
    plot_evaluation,
    plot_gradcam_gallery,
    plot_prediction_gallery,
    plot_reliability_diagram,
    predict,
)

_PARAMS = ["params:training", "params:evaluation"]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=predict,
                inputs=["model", "processed_images", "split_manifest", *_PARAMS],
                outputs=["validation_predictions", "test_predictions"],
                name="predict",
            ),
            Node(
                func=evaluate,
                inputs=["validation_predictions", "test_predictions", "split_manifest", *_PARAMS],
                outputs="test_metrics",
                name="evaluate",
            ),
            *_figure_nodes(),
            Node(
                func=package_model,
                inputs={
                    "model": "model",
                    "test_metrics": "test_metrics",
                    "preprocessing": "params:preprocessing",
                    "params": "params:evaluation",
                    # the out-of-distribution guard is fitted on them
                    "processed_images": "processed_images",
                    "split_manifest": "split_manifest",
                },
                outputs="servable_model",
                name="package_model",
            ),
        ],
        tags="evaluation",
    )


def _figure_nodes() -> list[Node]:
    """The report's figures, each from the predictions and the report it illustrates."""
    return [
        Node(
            func=plot_evaluation,
            inputs=["test_predictions", "test_metrics", "params:evaluation"],
            outputs=["confusion_matrix_plot", "roc_curve_plot"],
            name="plot_evaluation",
        ),
        Node(
            func=plot_reliability_diagram,
            inputs="test_metrics",
            outputs="reliability_diagram_plot",
            name="plot_reliability_diagram",
        ),
        Node(
            func=plot_prediction_gallery,
            inputs=["test_predictions", "processed_images", "test_metrics", "params:evaluation"],
            outputs="prediction_gallery_plot",
            name="plot_prediction_gallery",
        ),
        Node(
            func=plot_gradcam_gallery,
            inputs=[
                "model",
                "test_predictions",
                "processed_images",
                "test_metrics",
                "params:evaluation",
            ],
            outputs="gradcam_gallery_plot",
            name="plot_gradcam_gallery",
        ),
    ]
