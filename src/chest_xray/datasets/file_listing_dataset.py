"""The files of a folder, listed once: partition ids, sizes and modification stamps, and a
loader per file that reads nothing until it is called.

Why not ``partitions.PartitionedDataset``: an incremental run must know which
files exist and whether they changed since the last run *without reading them*.
``PartitionedDataset`` exposes no size or modification time, builds one dataset
object per file when it lists a folder (on thousands of images, more time than
the rest of a run that reuses everything: docs/benchmarks.md#design-figures),
and, through fsspec, sees a symbolic link to a folder (``train ->
/mnt/disk2/train``) as one odd file. kedro-datasets has nothing that lists a
folder alone.

So this dataset, read only, for the raw images and for the PNGs a previous run
left. On a local file system it follows symbolic links to folders and files (a
link cycle is listed once); a dangling link is listed with size -1 and its
loader raises ``FileNotFoundError`` naming the missing target, so the caller
can skip it like any unreadable file. Partition ids follow
``PartitionedDataset``'s rules (path below the folder, ``filename_suffix``
stripped) and are the names on disk, unnormalised.

On an object store (``s3://``, ``gs://``, ``abfs://``: any fsspec URL, with
``credentials`` and ``fs_args`` passed to the file system like kedro-datasets
does) the folder is one recursive listing (``find``, a few requests per
thousand objects) and each loader one GET. There are no symbolic links there.
The stamp in ``modified`` is the object's entity tag where the store gives one
(S3 ``ETag``, Azure and GCS ``etag``, else GCS ``generation``) rather than its
time: S3's ``LastModified`` has one-second resolution, while an ETag changes
whenever the content does (for a single-part upload it is the MD5 of the bytes,
for a multipart one a digest of its parts' digests; with SSE-KMS or SSE-C
encryption no digest, but still a new tag for new content). Every load lists
afresh (fsspec's listing cache is dropped first), so a run sees the objects an
earlier run of the same process wrote.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import PurePosixPath
from typing import Any

import fsspec
import pandas as pd
from kedro.io.core import AbstractDataset, DatasetError, get_protocol_and_path

COLUMNS = ["partition", "size", "modified"]
DANGLING = -1  # the size listed for a symbolic link whose target is missing


class FileListing(Mapping[str, Callable[[], bytes]]):
    """Partition id -> loader of the file's bytes, like a loaded ``PartitionedDataset``;
    ``table`` holds one row per file: ``partition``, ``size``, ``modified``; ``root`` is the
    folder listed (for messages that must name it)."""

    def __init__(
        self, table: pd.DataFrame, loaders: Mapping[str, Callable[[], bytes]], root: str = ""
    ) -> None:
        self.table = table
        self._loaders = loaders
        self.root = root

    def __getitem__(self, partition: str) -> Callable[[], bytes]:
        return self._loaders[partition]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaders)

    def __len__(self) -> int:
        return len(self._loaders)


class FileListingDataset(AbstractDataset[FileListing, FileListing]):
    """Loads a ``FileListing`` of the files under ``path`` ending with ``filename_suffix``.

    ``modified`` is the file system's modification time as text (the exact
    value, for equality checks, not arithmetic), or on an object store the
    object's entity tag (see the module). A folder that does not exist
    loads as an empty listing, so the first run of an incremental node needs no
    special case; with ``required: true`` (the raw images) a missing or empty
    folder is an error that names it.

    Example catalog entry::

        raw_images:
          type: chest_xray.datasets.FileListingDataset
          path: data/01_raw/coronahack/Coronahack-Chest-XRay-Dataset/Coronahack-Chest-XRay-Dataset
          required: true
    """

    def __init__(
        self,
        *,
        path: str,
        filename_suffix: str = "",
        required: bool = False,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        protocol, folder = get_protocol_and_path(path)
        self._protocol = protocol
        self._fs = fsspec.filesystem(protocol, **(credentials or {}), **(fs_args or {}))
        self._folder = self._fs._strip_protocol(folder).rstrip("/")
        self._filename_suffix = filename_suffix
        self._required = required
        self.metadata = metadata

    def load(self) -> FileListing:
        local = self._protocol == "file"
        found = dict(_walk_local(self._folder)) if local else self._find_remote()
        rows, loaders = [], {}
        for file, (size, modified) in sorted(found.items()):
            if not file.endswith(self._filename_suffix):
                continue
            partition = str(PurePosixPath(file).relative_to(self._folder))
            if self._filename_suffix:
                partition = partition[: -len(self._filename_suffix)]
            rows.append((partition, size, modified))
            loaders[partition] = self._loader(file)
        if self._required and not rows:
            raise DatasetError(
                f"No files found in {self._protocol}://{self._folder}"
                f"{f' ending with {self._filename_suffix!r}' if self._filename_suffix else ''}: "
                "the folder is missing or empty"
            )
        table = pd.DataFrame(rows, columns=COLUMNS).astype(
            {"partition": str, "size": "int64", "modified": str}
        )
        root = self._folder if self._protocol == "file" else f"{self._protocol}://{self._folder}"
        return FileListing(table, loaders, root)

    def _find_remote(self) -> dict[str, tuple[int, str]]:
        """Every object below the folder as (size, stamp); {} when there is none."""
        self._fs.invalidate_cache(self._folder)  # list afresh (see the module)
        try:
            objects = self._fs.find(self._folder, detail=True)
        except FileNotFoundError:
            return {}
        return {
            file: (int(info.get("size") or 0), _modified(info))
            for file, info in objects.items()
            if info.get("type", "file") == "file"
        }

    def _loader(self, file: str) -> Callable[[], bytes]:
        def load() -> bytes:
            try:
                return bytes(self._fs.cat_file(file))
            except FileNotFoundError as error:  # a dangling link: say where it points
                if self._protocol != "file" or not os.path.islink(file):
                    raise
                raise FileNotFoundError(
                    f"{file} is a symbolic link to {os.readlink(file)}, which does not exist"
                ) from error

        return load

    def save(self, data: FileListing) -> None:
        raise DatasetError(f"FileListingDataset is read only ('{self._folder}')")

    def _exists(self) -> bool:
        return bool(self._fs.isdir(self._folder))

    def _describe(self) -> dict[str, Any]:
        return {
            "path": self._folder,
            "protocol": self._protocol,
            "filename_suffix": self._filename_suffix,
            "required": self._required,
        }


def _walk_local(folder: str) -> Iterator[tuple[str, tuple[int, str]]]:
    """Every file below ``folder`` as (path, (size, modified)), through symbolic links.

    Paths keep the names as seen from ``folder`` (a linked ``train`` folder's
    files are ``<folder>/train/...``); a folder reached twice through a link
    cycle is walked once.
    """
    seen: set[str] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        for name in files:
            path = os.path.join(root, name)
            try:
                stat = os.stat(path)
            except FileNotFoundError:  # a dangling symbolic link
                yield path, (DANGLING, "")
                continue
            yield path, (int(stat.st_size), repr(stat.st_mtime))


# Where fsspec file systems put what changes when a file's content does: an object
# store's entity tag or generation first (see the module), else a modification time.
_STAMP_KEYS = (
    "ETag",  # s3fs
    "etag",  # adlfs, gcsfs
    "generation",  # gcsfs
    "mtime",
    "LastModified",
    "last_modified",
    "updated",
    "modified",
)


def _modified(info: dict[str, Any]) -> str:
    """The file's change stamp under whichever key the file system uses ('' if none)."""
    for key in _STAMP_KEYS:
        if info.get(key) is not None:
            return repr(info[key]) if isinstance(info[key], float) else str(info[key])
    return ""
