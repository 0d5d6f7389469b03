"""Nodes of the data_processing pipeline: thin wrappers that log and hand over to the modules."""

from __future__ import annotations

import logging

import pandas as pd
from matplotlib.figure import Figure

from chest_xray.data.metadata import (
    COVID_CLASS,
    DROPPED_COLUMNS,
    assign_task_labels,
    deduplicate,
    join_files,
    normalise_metadata,
)
from chest_xray.data.params import MetadataParams, PreprocessingParams, SplitParams
from chest_xray.data.partitions import PartitionLoaders
from chest_xray.data.preprocessing import preprocess_incrementally
from chest_xray.data.reuse import file_stamps
from chest_xray.data.splitting import make_manifest
from chest_xray.data.summary import compare_with_shipped, dataset_summary_figure, summarise
from chest_xray.datasets.file_listing_dataset import FileListing
from chest_xray.modeling.params import TrainingParams

logger = logging.getLogger(__name__)


def join_metadata(
    raw_metadata: pd.DataFrame,
    raw_images: PartitionLoaders,
    params: MetadataParams,
    training: TrainingParams,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Join labels to the image files present; list what could not be matched.

    Only file names are used here (no image is read), so a bad CSV fails in
    seconds, before any image work. ``label`` is the class of ``training.task``
    (``metadata.assign_task_labels``); a row of no class is listed with the others.
    """
    tidy, duplicates = deduplicate(normalise_metadata(raw_metadata, params.label_map))
    index, orphans = join_files(tidy, raw_images.keys())
    index, classless = assign_task_labels(index, training.task, training.covid_class)
    if training.covid_class:
        covid = index.loc[index["label"] == COVID_CLASS, "split"].value_counts().to_dict()
        logger.warning(
            "COVID-19 is a class of its own with only %d image(s) %s: its metrics rest on "
            "a handful of test images (or none), read them with their intervals",
            sum(covid.values()),
            covid,
        )
    parts = (duplicates, orphans, classless)
    unmatched = pd.concat([d for d in parts if len(d)] or [orphans])
    for reason, count in unmatched["reason"].value_counts().items():
        examples = unmatched.loc[unmatched["reason"] == reason, "file_name"].head(5).tolist()
        logger.warning("Dropped %d item(s): %s, e.g. %s", count, reason, examples)
    if index.empty:
        raise ValueError(
            f"No image is left after joining {len(tidy)} metadata rows to {len(raw_images)} "
            "files of raw_images: check the raw_root setting and the folder layout "
            "(<raw_root>/Coronahack-Chest-XRay-Dataset/Coronahack-Chest-XRay-Dataset/train/)"
        )
    counts = index.groupby(["split", "label"]).size().to_dict()
    logger.info("Joined %d labelled images %s", len(index), counts)
    return index, unmatched.reset_index(drop=True)


def summarise_dataset(
    raw_metadata: pd.DataFrame,
    image_index: pd.DataFrame,
    raw_summary: pd.DataFrame,
    params: MetadataParams,
) -> tuple[pd.DataFrame, Figure]:
    """Counts by split, label and category; warns where Kaggle's own summary disagrees."""
    tidy = normalise_metadata(raw_metadata, params.label_map)
    summary = summarise(tidy, image_index)
    check = compare_with_shipped(summary, raw_summary, params.label_map)
    disagree = check[check["metadata_rows"] != check["shipped"]]
    if len(disagree):
        logger.warning("Metadata rows disagree with the shipped summary:\n%s", disagree)
    missing = check[check["images"] != check["shipped"]]
    if len(missing):
        logger.info(
            "%d shipped images have no file here (per category):\n%s",
            int((missing["shipped"] - missing["images"]).sum()),
            missing.to_string(index=False),
        )
    return summary, dataset_summary_figure(summary)


def preprocess_images(
    raw_images: FileListing,
    image_index: pd.DataFrame,
    params: PreprocessingParams,
    preprocessing_log_previous: pd.DataFrame | None,
    processed_images_previous: FileListing,
) -> tuple[dict[str, bytes], pd.DataFrame]:
    """Grey, resized PNG per joined image (keyed by ``image_id``) and a per-image log.

    A file that cannot be decoded is skipped, logged with its name and listed in
    the log with its reason; the run goes on. With ``params.incremental`` an
    image is made again only when its source, the settings or its PNG changed
    (``data.preprocessing``); only new PNGs are returned, so ``processed_images``
    keeps the folder's other files (``overwrite: false``). The last run's log
    (None before the first run) and the PNG folder come in as read-only entries.
    """
    partitions = dict(zip(image_index["image_id"], image_index["raw_partition"], strict=True))
    result = preprocess_incrementally(
        raw_images,
        partitions,
        params.output_settings,
        source_stamps=file_stamps(raw_images.table),
        previous_log=preprocessing_log_previous,
        pngs=processed_images_previous,
        incremental=params.incremental,
        verify_pngs=params.verify_pngs,
        workers=params.workers,
    )
    for key, reason in result.log.loc[
        result.log["status"] == "skipped", ["image_id", "reason"]
    ].values:
        logger.warning("Skipped %s: %s", key, reason)
    if result.stale_pngs:
        logger.warning(
            "Made %d PNG(s) again: not the bytes the last run recorded for them (written by "
            "a run with other settings, or damaged), e.g. %s",
            len(result.stale_pngs),
            result.stale_pngs[:5],
        )
    logger.info(
        "Preprocessed %d images to %s PNG, reused %d unchanged (%d without reading the "
        "file: same size and modification time, or ETag on an object store; %d PNG(s) "
        "checked by digest), skipped %d",
        len(result.images),
        params.image_size,
        result.reused,
        result.reused_unread,
        result.checked_pngs,
        result.skipped,
    )
    if result.skipped == len(result.log):
        raise ValueError("No image could be decoded: see the preprocessing_log dataset")
    return result.images, result.log


def split_dataset(
    image_index: pd.DataFrame, preprocessing_log: pd.DataFrame, params: SplitParams
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split manifest: every usable image with its split (train / validation / test); and
    the exact duplicates (same source bytes) found, with what was done with each copy."""
    unlogged = image_index.loc[~image_index["image_id"].isin(preprocessing_log["image_id"])]
    if len(unlogged):
        raise ValueError(
            f"preprocessing_log has no row for {len(unlogged)} of the {len(image_index)} images "
            f"of image_index (e.g. {unlogged['image_id'].head(3).tolist()}): it is incomplete or "
            "from another dataset. Run preprocess_images again (kedro run "
            "--pipelines=data_processing) instead of starting from split_dataset"
        )
    ok = preprocessing_log[preprocessing_log["status"] == "ok"]
    manifest, duplicates = make_manifest(
        image_index[image_index["image_id"].isin(ok["image_id"])],
        fraction=params.validation_fraction,
        strategy=params.strategy,
        seed=params.seed,
        digests=ok.set_index("image_id")["source_sha256"],
        duplicates=params.duplicates,
    )
    if len(duplicates):
        dropped = duplicates["action"].str.startswith("dropped")
        logger.warning(
            "%d image(s) are exact copies of another (same bytes): %d TEST copies of TRAIN "
            "images dropped, the others kept on one side of the split (duplicate_images)",
            len(duplicates),
            int(dropped.sum()),
        )
    table = manifest.groupby(["split", "label"]).size().unstack(fill_value=0)
    logger.info("Split (%s, seed %d):\n%s", params.strategy, params.seed, table)
    return manifest, duplicates


def report_dropped_items(
    unmatched_items: pd.DataFrame,
    image_index: pd.DataFrame,
    preprocessing_log: pd.DataFrame,
    duplicate_images: pd.DataFrame,
) -> pd.DataFrame:
    """Everything left out of the dataset, with the reason: one report to audit.

    Unmatched files and rows (from the join), images that did not decode, and
    TEST copies of TRAIN images (a leak) dropped by the split.
    """
    skipped = preprocessing_log[preprocessing_log["status"] != "ok"]
    unreadable = image_index.merge(skipped[["image_id", "reason"]], on="image_id")
    unreadable = unreadable.assign(reason="unreadable image: " + unreadable["reason"])
    leaks = duplicate_images[duplicate_images["action"].str.startswith("dropped")]
    leaked = image_index.merge(leaks[["image_id", "action"]], on="image_id")
    leaked = leaked.assign(reason="exact duplicate, " + leaked["action"])
    report = pd.concat(
        [unmatched_items[DROPPED_COLUMNS], unreadable[DROPPED_COLUMNS], leaked[DROPPED_COLUMNS]],
        ignore_index=True,
    )
    counts = report["reason"].str.split(r"[:,]").str[0].value_counts().to_dict()
    logger.info("Dropped %d item(s) in all: %s", len(report), counts)
    return report
