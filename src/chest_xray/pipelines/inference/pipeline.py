"""inference: a folder of new X-rays -> predictions, skipped files, Grad-CAM overlays.

Not part of ``__default__``: it runs on demand, with the newest packaged model
or any MLflow model URI (``--params=model_uri=models:/chest-xray@champion``).
"""

from kedro.pipeline import Node, Pipeline

from chest_xray.pipelines.inference.nodes import predict_new_images


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=predict_new_images,
                inputs=["inference_images", "servable_model", "params:inference"],
                outputs=["inference_predictions", "inference_skipped", "inference_gradcam"],
                name="predict_new_images",
            )
        ],
        tags="inference",
    )
