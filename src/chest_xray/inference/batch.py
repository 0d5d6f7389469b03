"""Predict a whole folder of new images: every readable file predicted, every other one listed.

Bad input never stops the batch: a file that cannot be read, decoded or used
(truncated, not an image, multi-frame DICOM, over the size limit...) becomes a
row of ``skipped`` with its reason, and the batch goes on. Decoding runs on a
thread pool (Pillow and pydicom's numpy work release the GIL for the heavy
parts) while the network predicts batch by batch, so memory stays at one batch
of pixels whatever the folder's size.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from chest_xray.data.imaging import UnreadableImageError
from chest_xray.data.partitions import resolve_workers
from chest_xray.inference.classifier import OOD_COLUMNS, Classifier, ImageTooLargeError

logger = logging.getLogger(__name__)
T = TypeVar("T")

PREDICTION_COLUMNS = [
    "file",
    "probability",
    "label",
    *OOD_COLUMNS,  # the out-of-distribution guard's score, flag and reason (inference/ood.py)
    "threshold",
    "threshold_source",
    "model",
]
SKIPPED_COLUMNS = ["file", "category", "reason"]


@dataclass
class BatchResult:
    """One row per predicted file, one per skipped file (``category``: why, in one word)."""

    predictions: pd.DataFrame
    skipped: pd.DataFrame

    @property
    def n_files(self) -> int:
        return len(self.predictions) + len(self.skipped)


def skip_category(error: BaseException) -> str:
    """``too_large`` | ``unsupported`` | ``unreadable``: one word to filter on."""
    if isinstance(error, ImageTooLargeError) or "too large" in str(error):
        return "too_large"
    if type(error).__name__ == "UnsupportedImageError":
        return "unsupported"
    return "unreadable"


def predict_files(
    files: Mapping[str, Callable[[], bytes]],
    classifier: Classifier,
    *,
    batch_size: int = 32,
    workers: int = 0,
    sizes: Mapping[str, int] | None = None,
    progress: bool = False,
) -> BatchResult:
    """Predict every file of ``files`` (name -> loader of its bytes), in name order.

    ``sizes`` (name -> bytes on disk, e.g. a listing's) lets an oversized file be
    skipped without reading it.
    """
    names = sorted(files)
    load = partial(_load_pixels, files=files, classifier=classifier, sizes=sizes or {})
    rows: list[dict[str, object]] = []
    skipped: list[dict[str, str]] = []
    bar = _progress(len(names), progress)
    with ThreadPoolExecutor(max_workers=resolve_workers(workers)) as pool:
        batch: list[tuple[str, np.ndarray]] = []
        for name, outcome in zip(
            names, _ordered_map(pool, load, names, 4 * batch_size), strict=True
        ):
            if isinstance(outcome, UnreadableImageError):
                skipped.append(
                    {"file": name, "category": skip_category(outcome), "reason": outcome.reason}
                )
                logger.warning("Skipped %s: %s", name, outcome.reason)
            else:
                batch.append((name, outcome))
                if len(batch) == batch_size:
                    rows += _predicted_rows(batch, classifier, batch_size)
                    batch = []
            if bar is not None:
                bar.update(1)
        rows += _predicted_rows(batch, classifier, batch_size)
    if bar is not None:
        bar.close()
    return BatchResult(
        _predictions(rows, classifier), pd.DataFrame(skipped, columns=SKIPPED_COLUMNS)
    )


def _load_pixels(
    name: str,
    *,
    files: Mapping[str, Callable[[], bytes]],
    classifier: Classifier,
    sizes: Mapping[str, int],
) -> np.ndarray | UnreadableImageError:
    """One file's pixels, or why it cannot be used (returned, never raised: a worker's
    exception would end the batch)."""
    limit = classifier.settings.max_image_bytes
    try:
        size = sizes.get(name)
        if size is not None and size > limit:
            raise ImageTooLargeError(
                name, f"too large: {size:,} bytes, over the model's limit of {limit:,} bytes"
            )
        try:
            data = files[name]()
        except (OSError, ValueError) as error:  # ValueError: a path the OS cannot take
            raise UnreadableImageError(name, f"cannot read the file: {error}") from error
        return classifier.pixels(data, name)
    except UnreadableImageError as error:
        return error


def _predicted_rows(
    batch: list[tuple[str, np.ndarray]], classifier: Classifier, batch_size: int
) -> list[dict[str, object]]:
    """The prediction rows of one batch of (name, pixels)."""
    if not batch:
        return []
    pixels = np.stack([image for _, image in batch])
    columns = classifier.table(classifier.probabilities(pixels, batch_size), pixels)
    rows: list[dict[str, object]] = []
    for index, (name, _) in enumerate(batch):
        row: dict[str, object] = {"file": name}
        row.update({key: values[index] for key, values in columns.items()})  # type: ignore[index]
        rows.append(row)
    return rows


def _predictions(rows: list[dict[str, object]], classifier: Classifier) -> pd.DataFrame:
    """The predictions table: the rows, the model's threshold and where the model came from."""
    extra = classifier.class_columns()  # multiclass: probability_<CLASS> per class
    predictions = pd.DataFrame(rows, columns=["file", "probability", "label", *OOD_COLUMNS, *extra])
    predictions["threshold"] = classifier.settings.threshold
    predictions["threshold_source"] = classifier.settings.threshold_source
    predictions["model"] = classifier.source
    return predictions[[*PREDICTION_COLUMNS, *extra]].reset_index(drop=True)


def most_confident(predictions: pd.DataFrame, n: int) -> list[str]:
    """The ``n`` files most confidently positive and the ``n`` most confidently negative
    (multiclass: the ``n`` least and most confident predictions)."""
    ordered = predictions.sort_values(["probability", "file"])
    low = ordered["file"].head(n).tolist()
    high = ordered["file"].tail(n).tolist()
    return sorted(set(low) | set(high))


def _ordered_map(
    pool: ThreadPoolExecutor, func: Callable[[str], T], items: Iterable[str], ahead: int
) -> Iterator[T]:
    """``pool.map`` that submits at most ``ahead`` items in advance (bounded memory)."""
    iterator = iter(items)
    pending = deque(pool.submit(func, item) for item in islice(iterator, ahead))
    while pending:
        future = pending.popleft()
        for item in islice(iterator, 1):
            pending.append(pool.submit(func, item))
        yield future.result()


def _progress(total: int, show: bool) -> Any:
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="Predicting", unit="img")
