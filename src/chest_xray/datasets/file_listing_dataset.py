"""The files of a folder as a table (partition id, size, modification stamp); nothing is read.

An incremental run needs to know which files exist and whether they changed
since the last run, without reading them. ``partitions.PartitionedDataset``
lists a folder too, but builds one dataset object per file (on a dataset of
thousands of images, more time than the rest of a run that reuses everything:
docs/benchmarks.md#design-figures) and exposes no size
or modification time; kedro-datasets has nothing that lists a folder alone.
Partition ids follow ``PartitionedDataset``'s rules (path below the folder,
``filename_suffix`` stripped), so both views of one folder share their keys.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import fsspec
import pandas as pd
from kedro.io.core import AbstractDataset, DatasetError, get_protocol_and_path

COLUMNS = ["partition", "size", "modified"]


class FileListingDataset(AbstractDataset[pd.DataFrame, pd.DataFrame]):
    """Loads one row per file under ``path`` ending with ``filename_suffix``; read only.

    ``modified`` is the file system's modification time as text (the exact
    value, for equality checks, not arithmetic). A folder that does not exist
    loads as an empty table, so the first run of an incremental node needs no
    special case.

    Example catalog entry::

        raw_image_files:
          type: chest_xray.datasets.file_listing_dataset.FileListingDataset
          path: data/01_raw/coronahack/Coronahack-Chest-XRay-Dataset/Coronahack-Chest-XRay-Dataset
    """

    def __init__(
        self,
        *,
        path: str,
        filename_suffix: str = "",
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        protocol, folder = get_protocol_and_path(path)
        self._protocol = protocol
        self._fs = fsspec.filesystem(protocol, **(credentials or {}), **(fs_args or {}))
        self._folder = self._fs._strip_protocol(folder).rstrip("/")
        self._filename_suffix = filename_suffix
        self.metadata = metadata

    def load(self) -> pd.DataFrame:
        rows = []
        if self._fs.isdir(self._folder):
            for file, info in sorted(self._fs.find(self._folder, detail=True).items()):
                if not file.endswith(self._filename_suffix):
                    continue
                partition = str(PurePosixPath(file).relative_to(self._folder))
                if self._filename_suffix:
                    partition = partition[: -len(self._filename_suffix)]
                rows.append((partition, int(info.get("size") or 0), _modified(info)))
        return pd.DataFrame(rows, columns=COLUMNS).astype(
            {"partition": str, "size": "int64", "modified": str}
        )

    def save(self, data: pd.DataFrame) -> None:
        raise DatasetError(f"FileListingDataset is read only ('{self._folder}')")

    def _exists(self) -> bool:
        return self._fs.isdir(self._folder)

    def _describe(self) -> dict[str, Any]:
        return {
            "path": self._folder,
            "protocol": self._protocol,
            "filename_suffix": self._filename_suffix,
        }


def _modified(info: dict[str, Any]) -> str:
    """The modification time under whichever key the file system uses ('' if none)."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "modified"):
        if info.get(key) is not None:
            return repr(info[key]) if isinstance(info[key], float) else str(info[key])
    return ""
