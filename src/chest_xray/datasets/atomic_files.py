"""CSV and JSON datasets that land whole or not at all, on a local disk or an object store.

``pandas.CSVDataset`` and ``json.JSONDataset`` write straight into the target
file: a full disk or a kill mid-write leaves it truncated, and the next run
reads the truncated rows as if they were the whole table (a ``preprocessing_log``
cut short gave ``split_dataset`` a smaller manifest without a word). These
subclasses change only that: the bytes are built in memory, then

- on a local disk, written to a temporary file beside the target and renamed
  over it (atomic on one file system);
- on an object store (``s3://``, ``gs://``, ``abfs://``), stored with one
  ``pipe_file`` call: one PUT, or for a large object a multipart upload that is
  completed only after its last part (and aborted on an error). A reader sees
  the old object or the new one, never part of one, so no rename is needed
  (object stores have none).

Loading, versioning and every argument are the parents'.

kedro-mlflow's ``MlflowArtifactDataset`` logs the file it wraps from the local
disk, at the path ``_get_save_path()`` gives, and cannot read an object store
(kedro-mlflow issue #15). When it wraps one of these datasets on an object
store, that path is a local copy of the bytes, written beside the upload in a
folder of this process's temporary directory (removed at exit): the run logs
the same file, the bucket holds the data.
"""

from __future__ import annotations

import atexit
import io
import json
import shutil
import tempfile
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec
import pandas as pd
from kedro.io.core import DatasetError, get_filepath_str
from kedro_datasets.json import JSONDataset
from kedro_datasets.pandas import CSVDataset

from chest_xray.data.files import write_atomically


class _WholeFileMixin:
    """What both datasets add: one whole write, and a local copy for kedro-mlflow."""

    _protocol: str
    _fs: fsspec.AbstractFileSystem

    def _save_whole(self, data: bytes) -> None:
        target = super()._get_save_path()  # type: ignore[misc]
        write_whole(self._fs, self._protocol, get_filepath_str(target, self._protocol), data)
        if self._protocol != "file" and getattr(self, "_logging_activated", False):
            copy = Path(str(self._get_save_path()))
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(data)
        self._invalidate_cache()  # type: ignore[attr-defined]

    def _get_save_path(self) -> PurePosixPath:
        """The object's path; on an object store, the local copy kedro-mlflow logs instead."""
        path: PurePosixPath = super()._get_save_path()  # type: ignore[misc]
        if self._protocol == "file":
            return path
        return PurePosixPath(_copies_folder(), self._protocol, path.as_posix().lstrip("/"))


class AtomicCSVDataset(_WholeFileMixin, CSVDataset):
    """``pandas.CSVDataset`` whose save replaces the file whole (see the module)."""

    def save(self, data: pd.DataFrame) -> None:
        buffer = io.StringIO()
        data.to_csv(path_or_buf=buffer, **self._save_args)
        encoding = self._fs_open_args_save.get("encoding") or "utf-8"
        self._save_whole(buffer.getvalue().encode(encoding))


class AtomicJSONDataset(_WholeFileMixin, JSONDataset):
    """``json.JSONDataset`` whose save replaces the file whole (see the module)."""

    def save(self, data: Any) -> None:
        buffer = io.StringIO()
        json.dump(data, buffer, **self._save_args)
        self._save_whole(buffer.getvalue().encode("utf-8"))


def write_whole(fs: fsspec.AbstractFileSystem, protocol: str, path: str, data: bytes) -> None:
    """Store ``data`` at ``path`` whole or not at all (see the module), as a ``DatasetError``
    naming the path when it fails."""
    if protocol == "file":
        atomic_local_write(path, data)
        return
    try:
        fs.pipe_file(path, data)
    except OSError as error:
        raise DatasetError(f"Cannot write '{protocol}://{path}': {error}") from error


def atomic_local_write(path: str, data: bytes) -> None:
    """Write to a temporary file beside ``path`` and rename it into place."""
    try:
        write_atomically(path, data)
    except OSError as error:
        raise DatasetError(f"Cannot write '{path}': {error}") from error


@cache
def _copies_folder() -> str:
    """This process's folder of local copies for kedro-mlflow (removed at exit)."""
    folder = tempfile.mkdtemp(prefix="chest-xray-mlflow-copies-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
