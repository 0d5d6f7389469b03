"""data_processing: join -> (summary | preprocess -> split -> dropped-items report)."""

from kedro.pipeline import Node, Pipeline

from chest_xray.pipelines.data_processing.nodes import (
    join_metadata,
    preprocess_images,
    report_dropped_items,
    split_dataset,
    summarise_dataset,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=join_metadata,
                inputs=["raw_metadata", "raw_images", "params:metadata", "params:training"],
                outputs=["image_index", "unmatched_items"],
                name="join_metadata",
            ),
            Node(
                func=summarise_dataset,
                inputs=["raw_metadata", "image_index", "raw_summary", "params:metadata"],
                outputs=["dataset_summary", "dataset_summary_plot"],
                name="summarise_dataset",
            ),
            Node(
                func=preprocess_images,
                inputs=[
                    "raw_images",
                    "image_index",
                    "params:preprocessing",
                    # What the last run left, read only: an incremental run redoes
                    # only new or changed images, and PNGs that are not what it recorded.
                    "preprocessing_log_previous",
                    "processed_images_previous",
                ],
                outputs=["processed_images", "preprocessing_log"],
                name="preprocess_images",
            ),
            Node(
                func=report_dropped_items,
                inputs=["unmatched_items", "image_index", "preprocessing_log", "duplicate_images"],
                outputs="dropped_items",
                name="report_dropped_items",
            ),
            Node(
                func=split_dataset,
                inputs=["image_index", "preprocessing_log", "params:split"],
                outputs=["split_manifest", "duplicate_images"],
                name="split_dataset",
            ),
        ],
        tags="preprocessing",
    )
