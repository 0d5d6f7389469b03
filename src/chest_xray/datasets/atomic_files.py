"""CSV and JSON datasets that land whole or not at all.

``pandas.CSVDataset`` and ``json.JSONDataset`` write straight into the target
file: a full disk or a kill mid-write leaves it truncated, and the next run
reads the truncated rows as if they were the whole table (a ``preprocessing_log``
cut short gave ``split_dataset`` a smaller manifest without a word). These
subclasses change only that: the bytes are built in memory, written to a
temporary file beside the target and renamed over it (atomic on one local file
system), so a reader finds the old file or the new one, never half of one.
Object stores (``s3://`` ...) already store an object whole, so there the
parent's write is kept. Loading, versioning and every argument are the
parents'.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pandas as pd
from kedro.io.core import DatasetError, get_filepath_str
from kedro_datasets.json import JSONDataset
from kedro_datasets.pandas import CSVDataset

from chest_xray.files import write_atomically


class AtomicCSVDataset(CSVDataset):
    """``pandas.CSVDataset`` whose save replaces the file whole (see the module)."""

    def save(self, data: pd.DataFrame) -> None:
        buffer = io.StringIO()
        data.to_csv(path_or_buf=buffer, **self._save_args)
        encoding = self._fs_open_args_save.get("encoding") or "utf-8"
        _save_whole(self, buffer.getvalue().encode(encoding))


class AtomicJSONDataset(JSONDataset):
    """``json.JSONDataset`` whose save replaces the file whole (see the module)."""

    def save(self, data: Any) -> None:
        buffer = io.StringIO()
        json.dump(data, buffer, **self._save_args)
        _save_whole(self, buffer.getvalue().encode("utf-8"))


def _save_whole(dataset: CSVDataset | JSONDataset, data: bytes) -> None:
    path = get_filepath_str(dataset._get_save_path(), dataset._protocol)
    if dataset._protocol == "file":
        atomic_local_write(path, data)
    else:
        with dataset._fs.open(path, "wb") as handle:
            handle.write(data)
    dataset._invalidate_cache()


def atomic_local_write(path: str, data: bytes) -> None:
    """Write to a temporary file beside ``path`` and rename it into place."""
    try:
        write_atomically(path, data)
    except OSError as error:
        raise DatasetError(f"Cannot write '{path}': {error}") from error
