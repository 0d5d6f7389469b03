"""Preprocess many images on a thread pool, reusing only what the evidence vouches for.

Decoding, resizing and PNG encoding happen in Pillow's C code, which releases
the GIL, so threads (one per core by default) scale with the cores and cost
nothing to start, where a process pool's start-up was a large share of a small
job (docs/benchmarks.md#design-figures). Each worker reads the files of its
chunk itself, and only a few small chunks are queued ahead, so memory stays
flat however large the dataset and the reads overlap like the decoding: on an
object store (``s3://`` ...) every read is a request with its own latency, which
one reading thread would pay in sequence. A file that does not decode, or
cannot be read, is returned as a failure, not raised.

Incremental runs reuse a PNG only where the last run's log ties it to the
current source and settings (``data.reuse``: the evidence and the plan).

Each worker first fingerprints a source file's bytes (SHA-256, also outside the
GIL, and some fifty times cheaper than decoding, resizing and encoding the
image), so an unchanged image is not computed again.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from chest_xray.data.imaging import (
    OutputSettings,
    PreprocessedImage,
    UnreadableImageError,
    preprocess,
)
from chest_xray.data.partitions import PartitionLoaders, resolve_workers
from chest_xray.data.reuse import LOG_COLUMNS, LogRow, digest, plan_reuse, previous_rows

if TYPE_CHECKING:
    import pandas as pd

    from chest_xray.datasets.file_listing_dataset import FileListing

logger = logging.getLogger(__name__)


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
    output_digest: str = ""  # of ``image.png``, hashed on the worker


@dataclass
class PreprocessingResult:
    """New PNGs to save (image_id -> bytes), the whole log, and what happened, counted."""

    images: dict[str, bytes]
    log: pd.DataFrame
    reused: int
    reused_unread: int
    skipped: int
    stale_pngs: list[str]
    checked_pngs: int


def preprocess_incrementally(
    raw_images: PartitionLoaders,
    partitions: Mapping[str, str],
    settings: OutputSettings,
    *,
    source_stamps: Mapping[str, str],
    previous_log: pd.DataFrame | None = None,
    pngs: FileListing | None = None,
    incremental: bool = True,
    verify_pngs: bool = False,
    workers: int = 0,
) -> PreprocessingResult:
    """Preprocess every image of ``partitions`` (image_id -> raw partition), reusing the
    last run's PNG wherever the evidence ties it to this source and these settings.

    ``raw_images`` loads a raw partition's bytes; ``source_stamps`` gives raw
    partition -> "size:modified" (a file with an unchanged stamp is not read);
    ``previous_log`` and ``pngs`` are what the last run left (None before the
    first run). Only new PNGs are returned: the folder's other files stay.
    ``verify_pngs`` hashes every PNG to be reused, whatever its stamp (``data.reuse``).
    """
    import pandas as pd

    previous = previous_rows(previous_log, settings) if incremental else {}
    plan = plan_reuse(partitions, previous, source_stamps, pngs, verify=verify_pngs)
    rows = dict(plan.kept)
    candidates = plan.candidates

    def unchanged(key: str, source_digest: str) -> bool:
        return key in candidates and candidates[key].source_sha256 == source_digest

    images: dict[str, bytes] = {}
    for outcome in preprocess_all(
        raw_images, plan.jobs, settings, workers=workers, reuse=unchanged
    ):
        key = outcome.key
        stamp = source_stamps.get(partitions[key], "")
        if outcome.reused:  # same bytes, new stamp: remember it, so next time it is not read
            rows[key] = candidates[key]._replace(source_stamp=stamp)
            continue
        rows[key] = _new_row(outcome, stamp, settings)
        if outcome.image is not None:
            images[key] = outcome.image.png
    log = pd.DataFrame([rows[key] for key in partitions], columns=LOG_COLUMNS)
    skipped = int((log["status"] == "skipped").sum())
    return PreprocessingResult(
        images=images,
        log=log,
        reused=len(partitions) - len(images) - skipped,
        reused_unread=sum(row.status == "ok" for row in plan.kept.values()),
        skipped=skipped,
        stale_pngs=plan.stale_pngs,
        checked_pngs=plan.checked_pngs,
    )


def _new_row(outcome: Outcome, stamp: str, settings: OutputSettings) -> LogRow:
    """The log row of an image this run processed: made, or skipped with its reason."""
    image = outcome.image
    if image is None:
        return LogRow(
            image_id=outcome.key,
            status="skipped",
            reason=outcome.reason,
            original_mode="",
            original_width=0,
            original_height=0,
            source_sha256=outcome.source_digest,
            source_stamp=stamp,
            output_sha256="",
            output_stamp="",
            settings=settings.key,
        )
    return LogRow(
        image_id=outcome.key,
        status="ok",
        reason="",
        original_mode=image.original_mode,
        original_width=image.original_width,
        original_height=image.original_height,
        source_sha256=outcome.source_digest,
        source_stamp=stamp,
        output_sha256=outcome.output_digest,
        # The PNG's stamp exists once the catalog has saved it: checked next run.
        output_stamp="",
        settings=settings.key,
    )


# --------------------------------------------------------------------- the worker pool


def _run_one(
    item: tuple[str, str],
    *,
    loaders: PartitionLoaders,
    reuse: Callable[[str, str], bool] | None,
    settings: OutputSettings,
) -> Outcome:
    """Read one file, fingerprint its bytes, then reuse its last output or preprocess it."""
    key, name = item
    data = _read(loaders, name)
    if isinstance(data, OSError):
        return Outcome(key, None, f"cannot read the file: {data}")
    source = digest(data)
    if reuse is not None and reuse(key, source):
        return Outcome(key, None, source_digest=source, reused=True)
    try:
        image = preprocess(data, name, settings)
    except UnreadableImageError as error:
        return Outcome(key, None, error.reason, source)
    return Outcome(key, image, "", source, output_digest=digest(image.png))


def _run_chunk(items: list[tuple[str, str]], **options: Any) -> list[Outcome]:
    """One task for a worker: a few images, so queueing costs little per image."""
    return [_run_one(item, **options) for item in items]


def preprocess_all(
    loaders: PartitionLoaders,
    jobs: Sequence[tuple[str, str]],
    settings: OutputSettings,
    *,
    workers: int = 0,
    chunk: int = 8,
    reuse: Callable[[str, str], bool] | None = None,
) -> Iterator[Outcome]:
    """Yield one ``Outcome`` per ``(output key, raw partition)`` in ``jobs``, in order.

    ``loaders`` maps a raw partition to a zero-argument function returning the
    file's bytes (a loaded ``FileListing`` or ``PartitionedDataset``), called on
    the worker threads (concurrently: fsspec file systems allow it). ``reuse(key, digest)``
    returning True marks that image as reused instead of processing it.
    ``workers`` threads (0: one per core; 1: all in the calling thread).
    """
    from tqdm.auto import tqdm

    task = partial(_run_chunk, loaders=loaders, reuse=reuse, settings=settings)
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

        items: list[tuple[str, str]] = []
        for number, (key, partition) in enumerate(jobs, start=1):
            items.append((key, partition))
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
