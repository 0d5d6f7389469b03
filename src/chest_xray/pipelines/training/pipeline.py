"""training: processed PNGs + split manifest -> model, training history and curves.

The model and its history are persisted, so ``kedro run --pipelines=evaluation``
re-evaluates the saved model without training again."""

from kedro.pipeline import Node, Pipeline

from chest_xray.pipelines.training.nodes import plot_training_curves, train_model


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=train_model,
                inputs=["processed_images", "split_manifest", "params:training"],
                outputs=["model", "training_history"],
                name="train_model",
            ),
            Node(
                func=plot_training_curves,
                inputs="training_history",
                outputs="training_curves_plot",
                name="plot_training_curves",
            ),
        ],
        tags="training",
    )
