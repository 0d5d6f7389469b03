"""Run ``imaging.preprocess`` over many images on a thread pool.

Decoding, resizing and PNG encoding happen in Pillow's C code, which releases
the GIL, so threads (one per core by default) scale with the cores and cost
nothing to start, where a process pool's start-up was a large share of a small
job (docs/benchmarks.md#design-figures). The encoded bytes are read lazily by the calling thread,
a few small chunks ahead of the workers, so memory stays flat however large
the dataset. A file that does not decode is returned as a failure, not raised.

Each worker first fingerprints a file's bytes (SHA-256, also outside the GIL,
and some fifty times cheaper than decoding, resizing and encoding the image), so
a caller can reuse the output of an unchanged image instead of computing it again.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from chest_xray.data.imaging import (
    OUTPUT_VERSION,
    PreprocessedImage,
    ResizeMode,
    UnreadableImageError,
    preprocess,
)
from chest_xray.data.partitions import PartitionLoaders, resolve_workers

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

LOG_COLUMNS = [
    "image_id",
    "status",
    "reason",
    "original_mode",
    "original_width",
    "original_height",
    # What the output was made from: an incremental run reuses an image's row
    # (and PNG) only while both are unchanged. The stamp (size and modification
    # time) lets it skip reading a file; the digest decides when the stamp changed.
    "source_sha256",
    "source_stamp",
    "settings",
]

# Chunks of work submitted ahead of the one being collected, per worker: enough
# to keep every worker busy, few enough to keep the read-ahead bytes small.
_CHUNKS_AHEAD_PER_WORKER = 2


@dataclass(frozen=True)
class Outcome:
    """What happened to one image: a PNG, a reason it was skipped, or reused.

    ``reused`` means the caller's ``reuse`` check accepted the previous output,
    so nothing was decoded and ``image`` is None. ``source_digest`` is empty
    when the file could not be read.
    """

    key: str
    image: PreprocessedImage | None
    reason: str = ""
    source_digest: str = ""
    reused: bool = False


def source_digest(data: bytes) -> str:
    """Fingerprint of a file's encoded bytes: any changed byte changes it."""
    # SHA-256 over BLAKE2b: hardware-accelerated on current CPUs (docs/benchmarks.md#design-
    # figures), and 128 bits of it are plenty to notice a change.
    return hashlib.sha256(data).hexdigest()[:32]


def file_stamps(listing: pd.DataFrame | None) -> dict[str, str]:
    """Partition -> "size:modified" from a ``FileListingDataset`` table ({} without one)."""
    if listing is None or listing.empty:
        return {}
    stamps = listing["size"].astype(str) + ":" + listing["modified"].astype(str)
    return dict(zip(listing["partition"], stamps, strict=True))


def settings_key(
    size: tuple[int, int], resize_mode: ResizeMode, jpeg_draft: bool, png_compress_level: int
) -> str:
    """Everything that decides the output bytes, as one readable string for the log."""
    height, width = size
    draft = "draft" if jpeg_draft else "full"
    return f"v{OUTPUT_VERSION} {height}x{width} {resize_mode} {draft} zlib{png_compress_level}"


def reusable_rows(
    previous_log: pd.DataFrame | None, existing_outputs: Collection[str], settings: str
) -> dict[str, tuple]:
    """Rows of the last run's log that still hold for ``settings``, by image_id.

    An ``ok`` row holds only while its output (a key of ``existing_outputs``)
    is still there, so a deleted PNG is made again; a ``skipped`` row (the file
    did not decode) holds as it is. A log from before fingerprints were
    recorded holds nothing. The caller still compares ``source_sha256`` with
    the file's current bytes.
    """
    if previous_log is None or not set(LOG_COLUMNS) <= set(previous_log.columns):
        return {}
    log = previous_log[LOG_COLUMNS]
    digest = log["source_sha256"].astype(str)
    current = (log["settings"].astype(str) == settings) & (digest != "")
    ok = log["status"] == "ok"
    present = log["image_id"].isin(set(existing_outputs))
    rows = log[current & ((ok & present) | (log["status"] == "skipped"))]
    return {row[0]: row for row in rows.itertuples(index=False, name=None)}


def _run_one(
    item: tuple[str, str, bytes | OSError],
    *,
    reuse: Callable[[str, str], bool] | None,
    size: tuple[int, int],
    resize_mode: ResizeMode,
    jpeg_draft: bool,
    png_compress_level: int,
) -> Outcome:
    """Fingerprint one file's bytes, then reuse its last output or preprocess it."""
    key, name, data = item
    if isinstance(data, OSError):
        return Outcome(key, None, f"cannot read the file: {data}")
    digest = source_digest(data)
    if reuse is not None and reuse(key, digest):
        return Outcome(key, None, source_digest=digest, reused=True)
    try:
        image = preprocess(
            data,
            name,
            size=size,
            resize_mode=resize_mode,
            jpeg_draft=jpeg_draft,
            png_compress_level=png_compress_level,
        )
    except UnreadableImageError as error:
        return Outcome(key, None, error.reason, digest)
    return Outcome(key, image, "", digest)


def _run_chunk(items: list[tuple[str, str, bytes | OSError]], **settings: Any) -> list[Outcome]:
    """One task for a worker: a few images, so queueing costs little per image."""
    return [_run_one(item, **settings) for item in items]


def preprocess_all(
    loaders: PartitionLoaders,
    jobs: Sequence[tuple[str, str]],
    *,
    size: tuple[int, int],
    resize_mode: ResizeMode,
    jpeg_draft: bool,
    png_compress_level: int,
    workers: int = 0,
    chunk: int = 8,
    reuse: Callable[[str, str], bool] | None = None,
) -> Iterator[Outcome]:
    """Yield one ``Outcome`` per ``(output key, raw partition)`` in ``jobs``, in order.

    ``loaders`` maps a raw partition to a zero-argument function returning the
    file's bytes (a Kedro ``PartitionedDataset`` load). ``reuse(key, digest)``
    returning True marks that image as reused instead of processing it.
    ``workers`` threads (0: one per core; 1: all in the calling thread).
    """
    from tqdm.auto import tqdm

    task = partial(
        _run_chunk,
        reuse=reuse,
        size=size,
        resize_mode=resize_mode,
        jpeg_draft=jpeg_draft,
        png_compress_level=png_compress_level,
    )
    n_workers = min(resolve_workers(workers), max(1, len(jobs)))
    ahead = _CHUNKS_AHEAD_PER_WORKER * n_workers
    # Chunks in job order: futures on the pool, or results when in-process.
    queue: deque[Future | list[Outcome]] = deque()
    with (
        tqdm(total=len(jobs), desc="preprocess", unit="img", mininterval=2.0) as progress,
        _Workers(n_workers) as pool,
    ):

        def drain(limit: int) -> Iterator[Outcome]:
            while len(queue) > limit:
                work = queue.popleft()
                outcomes = work.result() if isinstance(work, Future) else work
                progress.update(len(outcomes))
                yield from outcomes

        items: list[tuple[str, str, bytes | OSError]] = []
        for number, (key, partition) in enumerate(jobs, start=1):
            items.append((key, partition, _read(loaders, partition)))
            if len(items) == chunk or number == len(jobs):
                queue.append(pool.submit(partial(task, items)))
                items = []
                yield from drain(ahead)
        yield from drain(0)


def _read(loaders: PartitionLoaders, partition: str) -> bytes | OSError:
    """The file's bytes, or the OSError that reading it raised (reported as a skip)."""
    try:
        return loaders[partition]()
    except OSError as error:
        return error


class _Workers:
    """A thread pool, or the calling thread itself when ``workers`` is 1 (easy to debug)."""

    def __init__(self, workers: int) -> None:
        self._pool = (
            ThreadPoolExecutor(workers, thread_name_prefix="preprocess") if workers > 1 else None
        )

    def __enter__(self) -> _Workers:
        return self

    def submit(self, task: Callable[[], list[Outcome]]) -> Future | list[Outcome]:
        """A future of the task's result, or the result itself when running in-process."""
        if self._pool is None:
            return task()
        return self._pool.submit(task)

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
