"""Image partitions as Kedro's ``PartitionedDataset`` hands them over, and the threads that
read them: shared by preprocessing (raw images) and the model inputs (PNGs)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

# Partition id (``train/person1_bacteria_1.jpeg``, ``test/IM-0001-0001``) -> a loader of
# its encoded bytes: nothing is read until a loader is called.
PartitionLoaders = Mapping[str, Callable[[], bytes]]


def resolve_workers(workers: int) -> int:
    """``workers``, where 0 means one per CPU core available to this process."""
    if workers:
        return workers
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
