"""Which preprocessed PNGs an incremental run may reuse: the evidence, and the plan.

Incremental runs: a PNG from an earlier run is reused only when the evidence
ties *that file's content* to the current source and settings. The log row of
every image records the source's digest and the settings, and also the digest
of the PNG it made (``output_sha256``). A later run trusts a PNG only if it
still has those bytes: the first rerun hashes each PNG once and records its
stamp (size and modification time; on an object store, size and ETag:
``FileListingDataset``), later reruns compare stamps and read nothing (a file
without a stamp is read every time). Why this design rather than a record
written before the PNGs or a folder per settings: Kedro saves a node's outputs
one after the other, so a run killed between the PNGs and the log, or a PNG
damaged or replaced later, must be caught by the next run whatever the order;
the PNG's own digest is the one piece of evidence that cannot disagree with the
file, and it costs one read per new PNG (docs/benchmarks.md, incremental runs).
Like ``make``, a PNG rewritten with the same size and modification time is not
noticed (an ETag, on an object store, changes with the content), unless the run
verifies every PNG (``verify``: ``preprocessing.verify_pngs``, which the training's
error on a PNG that does not decode advises): then each one is read and hashed
against the log's digest whatever its stamp, and a damaged one is made again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from chest_xray.data.imaging import OutputSettings

if TYPE_CHECKING:
    import pandas as pd

    from chest_xray.datasets.file_listing_dataset import FileListing


class LogRow(NamedTuple):
    """One image's line in ``preprocessing_log``: what happened, and the evidence that ties
    its PNG to its source file and the settings (what an incremental run checks)."""

    image_id: str
    status: str  # ok | skipped
    reason: str  # why it was skipped ("" when ok)
    original_mode: str
    original_width: int
    original_height: int
    source_sha256: str  # the raw file's bytes ("" when it could not be read)
    source_stamp: str  # the raw file's "size:modified" when it was last hashed
    output_sha256: str  # the PNG's bytes, as this run made them ("" when skipped)
    output_stamp: str  # the PNG's "size:modified" when its digest was last checked
    settings: str  # OutputSettings.key


LOG_COLUMNS = list(LogRow._fields)
# Columns that hold digests, stamps or settings: text, even when one looks like a number.
LOG_TEXT_COLUMNS = [
    "source_sha256",
    "source_stamp",
    "output_sha256",
    "output_stamp",
    "settings",
]


def digest(data: bytes) -> str:
    """Fingerprint of a file's bytes (source or PNG): any changed byte changes it."""
    # SHA-256 over BLAKE2b: hardware-accelerated on current CPUs (docs/benchmarks.md#design-
    # figures), and 128 bits of it are plenty to notice a change.
    return hashlib.sha256(data).hexdigest()[:32]


def file_stamps(listing: pd.DataFrame | None) -> dict[str, str]:
    """Partition -> "size:modified" from a ``FileListing`` table ({} without one).

    A file whose file system gives no modification stamp (``modified`` empty: a
    dangling link, or a store that reports neither a time nor an ETag) gets the
    empty stamp, which vouches for nothing: its bytes are read and the digest decides.
    """
    if listing is None or listing.empty:
        return {}
    modified = listing["modified"].astype(str)
    stamps = (listing["size"].astype(str) + ":" + modified).where(modified != "", "")
    return dict(zip(listing["partition"], stamps, strict=True))


# ------------------------------------------------------------------- the reuse plan


@dataclass
class ReusePlan:
    """Which images need their source read, and what the last run's log still vouches for.

    ``kept``: rows that hold as they are (source unchanged by its stamp, PNG
    checked): nothing is read. ``jobs``: (image_id, raw partition) to read;
    ``candidates`` holds, for some of them, the row to keep if the source's
    digest is unchanged. ``stale_pngs``: images whose PNG no longer has the
    bytes the log recorded (another run's settings, damage): made again.
    """

    kept: dict[str, LogRow] = field(default_factory=dict)
    jobs: list[tuple[str, str]] = field(default_factory=list)
    candidates: dict[str, LogRow] = field(default_factory=dict)
    stale_pngs: list[str] = field(default_factory=list)
    checked_pngs: int = 0


def previous_rows(previous_log: pd.DataFrame | None, settings: OutputSettings) -> dict[str, LogRow]:
    """Rows of the last run's log made with ``settings`` and fingerprinted, by image_id.

    A log written before these columns existed vouches for nothing.
    """
    if previous_log is None or not set(LOG_COLUMNS) <= set(previous_log.columns):
        return {}
    log = previous_log[LOG_COLUMNS]
    usable = (log["settings"].astype(str) == settings.key) & (
        log["source_sha256"].astype(str) != ""
    )
    return {row.image_id: row for row in map(LogRow._make, log[usable].itertuples(index=False))}


def plan_reuse(
    partitions: Mapping[str, str],
    previous: Mapping[str, LogRow],
    source_stamps: Mapping[str, str],
    pngs: FileListing | None,
    *,
    verify: bool = False,
) -> ReusePlan:
    """Decide, per image (``partitions``: image_id -> raw partition), what can be reused.

    An ``ok`` row holds only if its PNG is there *and* is the PNG that row
    describes: its stamp is the one last checked, or else its bytes hash to the
    recorded ``output_sha256`` (the first rerun after a PNG is written reads it
    once; a PNG rewritten by a run with other settings, or damaged, fails this
    and is made again). A ``skipped`` row holds as it is. Then the source: an
    unchanged stamp keeps the row without reading the file; otherwise the file
    is read and its digest decides.
    """
    plan = ReusePlan()
    png_stamps = file_stamps(None if pngs is None else pngs.table)
    for key, partition in partitions.items():
        row = previous.get(key)
        if row is not None and row.status == "ok":
            row = _checked_png(row, png_stamps.get(key), pngs, plan, verify)
        if row is None:
            plan.jobs.append((key, partition))
            continue
        stamp = source_stamps.get(partition, "")
        if stamp and row.source_stamp == stamp:
            plan.kept[key] = row
        else:
            plan.jobs.append((key, partition))
            plan.candidates[key] = row
    return plan


def _checked_png(
    row: LogRow, stamp: str | None, pngs: FileListing | None, plan: ReusePlan, verify: bool
) -> LogRow | None:
    """``row`` (with the PNG's stamp now checked) if its PNG is the one it made, else None;
    ``verify``: its bytes are hashed even when its stamp is the one last checked."""
    if stamp is None or pngs is None or not row.output_sha256:
        return None
    if stamp and stamp == row.output_stamp and not verify:  # the empty stamp vouches for nothing
        return row
    plan.checked_pngs += 1
    try:
        same = digest(pngs[row.image_id]()) == row.output_sha256
    except OSError:
        same = False
    if not same:
        plan.stale_pngs.append(row.image_id)
        return None
    return row._replace(output_stamp=stamp)
