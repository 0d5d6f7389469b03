"""training: train -> predict -> evaluate -> plots. Every hand-over is persisted,
so ``kedro run --from-nodes=predict`` re-evaluates the saved model without training."""

from kedro.pipeline import Node, Pipeline

from chest_xray.pipelines.training.nodes import (
    evaluate,
    plot_evaluation,
    plot_gallery,
    plot_training_history,
    predict,
    train_model,
)


def create_pipeline(**kwargs) -> Pipeline:
    training = Pipeline(
        [
            Node(
                func=train_model,
                inputs=["processed_images", "split_manifest", "params:training"],
                outputs=["model", "training_history"],
                name="train_model",
            ),
            Node(
                func=plot_training_history,
                inputs="training_history",
                outputs="training_curves_plot",
                name="plot_training_curves",
            ),
        ],
        tags="training",
    )
    evaluation = Pipeline(
        [
            Node(
                func=predict,
                inputs=["model", "processed_images", "split_manifest", "params:training"],
                outputs=["validation_predictions", "test_predictions"],
                name="predict",
            ),
            Node(
                func=evaluate,
                inputs=["validation_predictions", "test_predictions", "params:evaluation"],
                outputs="test_metrics",
                name="evaluate",
            ),
            Node(
                func=plot_evaluation,
                inputs=["test_predictions", "test_metrics", "params:evaluation"],
                outputs=["confusion_matrix_plot", "roc_curve_plot"],
                name="plot_evaluation",
            ),
            Node(
                func=plot_gallery,
                inputs=["test_predictions", "processed_images", "params:evaluation"],
                outputs="prediction_gallery_plot",
                name="plot_prediction_gallery",
            ),
        ],
        tags="evaluation",
    )
    return training + evaluation
