"""Run ``imaging.preprocess`` over many images in a process pool.

Decoding and resizing are CPU-bound and hold the GIL, so they go to worker
processes (one per core by default). The encoded bytes are read lazily in the
parent, a bounded chunk at a time, so memory stays flat however large the
dataset. A file that does not decode is returned as a failure, not raised.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial

from tqdm.auto import tqdm

from chest_xray.imaging import PreprocessedImage, ResizeMode, UnreadableImageError, preprocess

logger = logging.getLogger(__name__)

LOG_COLUMNS = ["image_id", "status", "reason", "original_mode", "original_width", "original_height"]


@dataclass(frozen=True)
class Outcome:
    """What happened to one image: a PNG, or the reason it was skipped."""

    key: str
    image: PreprocessedImage | None
    reason: str = ""


def _run_one(
    item: tuple[str, str, bytes | OSError],
    size: tuple[int, int],
    resize_mode: ResizeMode,
    jpeg_draft: bool,
    png_compress_level: int,
) -> Outcome:
    key, name, data = item
    if isinstance(data, OSError):
        return Outcome(key, None, f"cannot read the file: {data}")
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
        return Outcome(key, None, error.reason)
    return Outcome(key, image)


def resolve_workers(workers: int) -> int:
    """0 means one worker per CPU core available to this process."""
    if workers:
        return workers
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def preprocess_all(
    loaders: Mapping[str, Callable[[], bytes]],
    jobs: Sequence[tuple[str, str]],
    *,
    size: tuple[int, int],
    resize_mode: ResizeMode,
    jpeg_draft: bool,
    png_compress_level: int,
    workers: int = 0,
    chunk: int = 64,
) -> Iterator[Outcome]:
    """Yield one ``Outcome`` per ``(output key, raw partition)`` in ``jobs``, in order.

    ``loaders`` maps a raw partition to a zero-argument function returning the
    file's bytes (a Kedro ``PartitionedDataset`` load).
    """
    work = partial(
        _run_one,
        size=size,
        resize_mode=resize_mode,
        jpeg_draft=jpeg_draft,
        png_compress_level=png_compress_level,
    )
    n_workers = min(resolve_workers(workers), max(1, len(jobs)))
    progress = tqdm(total=len(jobs), desc="preprocess", unit="img", mininterval=2.0)
    with progress, _executor(n_workers) as pool:
        for start in range(0, len(jobs), chunk * n_workers):
            batch = [
                (key, partition, _read(loaders, partition))
                for key, partition in jobs[start : start + chunk * n_workers]
            ]
            results = pool.map(work, batch, chunksize=chunk) if pool else map(work, batch)
            for outcome in results:
                progress.update()
                yield outcome


def _read(loaders: Mapping[str, Callable[[], bytes]], partition: str) -> bytes | OSError:
    """The file's bytes, or the OSError that reading it raised (reported as a skip)."""
    try:
        return loaders[partition]()
    except OSError as error:
        return error


class _executor:
    """A spawn-based process pool, or ``None`` for in-process work when workers == 1."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._pool: Executor | None = None

    def __enter__(self) -> Executor | None:
        if self._workers > 1:
            # spawn: forking a process that has loaded TensorFlow or MLflow threads
            # can deadlock; the workers only import Pillow and NumPy.
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self._workers, mp_context=context)
        return self._pool

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
