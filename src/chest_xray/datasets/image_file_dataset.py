"""One image file as its encoded bytes.

``pillow.ImageDataset`` decodes the whole image when the catalog loads it, in
the main process. Preprocessing wants the encoded bytes instead: libjpeg can
then decode a 3,000 px X-ray straight at a quarter of its size (``draft``) in a
worker process, and a file that does not decode becomes a counted skip rather
than a catalog error. The same class writes the preprocessed PNGs whole or not
at all (renamed into place on a local disk, one PUT on an object store:
``atomic_files``), so an interrupted run never leaves a truncated image that a
later run trusts.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import fsspec
from kedro.io.core import AbstractDataset, DatasetError, get_filepath_str, get_protocol_and_path

from chest_xray.datasets.atomic_files import write_whole


class ImageFileDataset(AbstractDataset[bytes, bytes]):
    """Loads and saves the raw bytes of a single file (any fsspec protocol).

    Example catalog entry, as the ``dataset`` of a ``PartitionedDataset``::

        processed_images:
          type: partitions.PartitionedDataset
          path: data/03_primary/images
          dataset: chest_xray.datasets.ImageFileDataset
          filename_suffix: .png
    """

    def __init__(
        self,
        *,
        filepath: str,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        protocol, path = get_protocol_and_path(filepath)
        self._protocol = protocol
        self._filepath = PurePosixPath(path)
        self._fs = fsspec.filesystem(protocol, **(credentials or {}), **(fs_args or {}))
        self.metadata = metadata

    def load(self) -> bytes:
        path = get_filepath_str(self._filepath, self._protocol)
        with self._fs.open(path, "rb") as handle:
            return handle.read()

    def save(self, data: bytes) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DatasetError(
                f"ImageFileDataset saves encoded bytes, got {type(data).__name__} "
                f"for '{self._filepath}'"
            )
        path = get_filepath_str(self._filepath, self._protocol)
        write_whole(self._fs, self._protocol, path, bytes(data))

    def _exists(self) -> bool:
        return self._fs.exists(get_filepath_str(self._filepath, self._protocol))

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "protocol": self._protocol}
