"""Nodes of the data_processing pipeline: thin wrappers that log and hand over to the modules."""

from __future__ import annotations

import logging

import pandas as pd
from matplotlib.figure import Figure

from chest_xray.data.metadata import DROPPED_COLUMNS, deduplicate, join_files, normalise_metadata
from chest_xray.data.partitions import PartitionLoaders
from chest_xray.data.preprocessing import (
    LOG_COLUMNS,
    file_stamps,
    preprocess_all,
    reusable_rows,
    settings_key,
)
from chest_xray.data.splitting import make_manifest
from chest_xray.data.summary import compare_with_shipped, dataset_summary_figure, summarise
from chest_xray.params import MetadataParams, PreprocessingParams, SplitParams

logger = logging.getLogger(__name__)


def join_metadata(
    raw_metadata: pd.DataFrame, raw_images: PartitionLoaders, params: MetadataParams
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Join labels to the image files present; list what could not be matched.

    Only file names are used here (no image is read), so a bad CSV fails in
    seconds, before any image work.
    """
    tidy, duplicates = deduplicate(normalise_metadata(raw_metadata, params.label_map))
    index, orphans = join_files(tidy, raw_images.keys())
    unmatched = pd.concat([d for d in (duplicates, orphans) if len(d)] or [orphans])
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


def preprocess_images(  # noqa: PLR0917 - Kedro passes node inputs positionally
    raw_images: PartitionLoaders,
    image_index: pd.DataFrame,
    params: PreprocessingParams,
    preprocessing_log_previous: pd.DataFrame | None = None,
    processed_images_existing: pd.DataFrame | None = None,
    raw_image_files: pd.DataFrame | None = None,
) -> tuple[dict[str, bytes], pd.DataFrame]:
    """Grey, resized PNG per joined image (keyed by ``image_id``) and a per-image log.

    A file that cannot be decoded is skipped, logged with its name and listed in
    the log with its reason; the run goes on.

    With ``params.incremental`` an image is not decoded again when the last
    run's log has it with the same settings and its PNG is still there, and
    either its file's size and modification time (``raw_image_files``) are
    unchanged (then the file is not even read) or its bytes have the same
    SHA-256 (a file touched but not changed). Its log row carries over and only
    new PNGs are returned, so ``processed_images`` must keep the folder's other
    files (``overwrite: false``). The last run's log (None before the first
    run) and the listings come in as read-only entries; no PNG is read.
    """
    settings = settings_key(
        params.image_size, params.resize_mode, params.jpeg_draft, params.png_compress_level
    )
    existing = (
        set() if processed_images_existing is None else set(processed_images_existing["partition"])
    )
    previous = (
        reusable_rows(preprocessing_log_previous, existing, settings) if params.incremental else {}
    )
    stamps = file_stamps(raw_image_files)
    partitions = dict(zip(image_index["image_id"], image_index["raw_partition"], strict=True))
    digest_column = LOG_COLUMNS.index("source_sha256")
    stamp_column = LOG_COLUMNS.index("source_stamp")

    rows: dict[str, tuple] = {}
    jobs = []
    for key, partition in partitions.items():
        row, stamp = previous.get(key), stamps.get(partition, "")
        if row is not None and stamp and row[stamp_column] == stamp:
            rows[key] = row
        else:
            jobs.append((key, partition))
    unread = sum(row[1] == "ok" for row in rows.values())  # reused without a read

    def unchanged(key: str, digest: str) -> bool:
        return key in previous and previous[key][digest_column] == digest

    images: dict[str, bytes] = {}
    for outcome in preprocess_all(
        raw_images,
        jobs,
        size=params.image_size,
        resize_mode=params.resize_mode,
        jpeg_draft=params.jpeg_draft,
        png_compress_level=params.png_compress_level,
        workers=params.workers,
        reuse=unchanged,
    ):
        key, stamp = outcome.key, stamps.get(partitions[outcome.key], "")
        if outcome.reused:  # same bytes, new stamp: remember it, so next time it is not read
            row = previous[key]
            rows[key] = (*row[:stamp_column], stamp, *row[stamp_column + 1 :])
        elif outcome.image is None:
            logger.warning("Skipped %s: %s", key, outcome.reason)
            digest = outcome.source_digest
            rows[key] = (key, "skipped", outcome.reason, "", 0, 0, digest, stamp, settings)
        else:
            image = outcome.image
            images[key] = image.png
            rows[key] = (
                key,
                "ok",
                "",
                image.original_mode,
                image.original_width,
                image.original_height,
                outcome.source_digest,
                stamp,
                settings,
            )
    log = pd.DataFrame([rows[key] for key in partitions], columns=LOG_COLUMNS)
    reused = len(partitions) - len(images) - int((log["status"] == "skipped").sum())
    logger.info(
        "Preprocessed %d images to %s PNG, reused %d unchanged (%d without reading the "
        "file: same size and modification time), skipped %d",
        len(images),
        params.image_size,
        reused,
        unread,
        int((log["status"] == "skipped").sum()),
    )
    if not (log["status"] == "ok").any():
        raise ValueError("No image could be decoded: see the preprocessing_log dataset")
    return images, log


def split_dataset(
    image_index: pd.DataFrame, preprocessing_log: pd.DataFrame, params: SplitParams
) -> pd.DataFrame:
    """Split manifest: every usable image with its split (train / validation / test)."""
    usable = preprocessing_log.loc[preprocessing_log["status"] == "ok", "image_id"]
    manifest = make_manifest(
        image_index[image_index["image_id"].isin(usable)],
        fraction=params.validation_fraction,
        strategy=params.strategy,
        seed=params.seed,
    )
    table = manifest.groupby(["split", "label"]).size().unstack(fill_value=0)
    logger.info("Split (%s, seed %d):\n%s", params.strategy, params.seed, table)
    return manifest


def report_dropped_items(
    unmatched_items: pd.DataFrame, image_index: pd.DataFrame, preprocessing_log: pd.DataFrame
) -> pd.DataFrame:
    """Everything left out of the dataset, with the reason: one report to audit.

    Unmatched files and rows (from the join) plus images that did not decode.
    """
    skipped = preprocessing_log[preprocessing_log["status"] != "ok"]
    unreadable = image_index.merge(skipped[["image_id", "reason"]], on="image_id")
    unreadable = unreadable.assign(reason="unreadable image: " + unreadable["reason"])
    report = pd.concat(
        [unmatched_items[DROPPED_COLUMNS], unreadable[DROPPED_COLUMNS]], ignore_index=True
    )
    counts = report["reason"].str.split(":").str[0].value_counts().to_dict()
    logger.info("Dropped %d item(s) in all: %s", len(report), counts)
    return report
