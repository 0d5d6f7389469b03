"""A trained Keras 3 model, versioned, written atomically, with any backend.

``tensorflow.TensorFlowModelDataset`` imports TensorFlow and calls ``tf.keras``,
so it cannot load or save under ``KERAS_BACKEND=jax`` or ``torch`` on a machine
without TensorFlow (our GPU recipe runs on JAX), picks the format from
``save_format`` rather than the extension, and it copies the finished
file into place, so a run killed mid-copy leaves a truncated model that the
next ``--from-nodes=predict`` would pick as the latest version. This dataset
uses ``keras.saving`` only (``modeling.saving``) and renames a complete temporary
file into place.

On an object store (``s3://`` ..., with ``credentials``/``fs_args`` as in
kedro-datasets) Keras still writes and reads a local temporary file; saving
uploads the finished file with one ``put`` (a single PUT, or a multipart
upload completed only after its last part), so the bucket holds the whole
model or none, and the newest version is found by listing the versions.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import fsspec
from kedro.io.core import (
    AbstractVersionedDataset,
    DatasetError,
    Version,
    get_filepath_str,
    get_protocol_and_path,
)

from chest_xray.data.files import keep_mode
from chest_xray.modeling.saving import SUFFIXES, load_network, save_network

if TYPE_CHECKING:
    import keras


class KerasModelDataset(AbstractVersionedDataset["keras.Model", "keras.Model"]):
    """Saves with ``modeling.saving.save_network`` and loads with ``load_network``.

    The format follows the file extension: ``.keras`` (Keras 3 native, what the
    project writes) or ``.h5`` (legacy HDF5, still read: models saved by earlier
    versions). ``save_args: {include_optimizer: false}`` leaves the optimizer
    state out, in either format: about a third of the size, enough for
    inference and for fine-tuning with a fresh optimizer.

    Example::

        model:
          type: chest_xray.datasets.KerasModelDataset
          filepath: data/06_models/model.keras
          versioned: true
          save_args:
            include_optimizer: false
    """

    def __init__(
        self,
        *,
        filepath: str,
        version: Version | None = None,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        protocol, path = get_protocol_and_path(filepath, version)
        self._protocol = protocol
        self._fs = fsspec.filesystem(protocol, **(credentials or {}), **(fs_args or {}))
        self._suffix = PurePosixPath(path).suffix
        if self._suffix not in SUFFIXES:
            raise DatasetError(f"KerasModelDataset needs a .keras or .h5 filepath, got '{path}'")
        self._load_args = dict(load_args or {})
        self._save_args = dict(save_args or {})
        self.metadata = metadata
        super().__init__(
            filepath=PurePosixPath(path),
            version=version,
            exists_function=self._fs.exists,
            glob_function=self._fs.glob,
        )

    def load(self) -> keras.Model:
        load_path = get_filepath_str(self._get_load_path(), self._protocol)
        with tempfile.TemporaryDirectory(prefix="chest-xray-model-") as folder:
            local = os.path.join(folder, f"model{self._suffix}")
            self._fs.get(load_path, local)
            return load_network(local, **self._load_args)

    def save(self, data: keras.Model) -> None:
        save_path = get_filepath_str(self._get_save_path(), self._protocol)
        folder = os.path.dirname(save_path) if self._protocol == "file" else None
        try:
            if folder:
                os.makedirs(folder, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=".tmp-model-", dir=folder) as scratch:
                local = os.path.join(scratch, f"model{self._suffix}")
                save_network(data, local, **self._save_args)
                if self._protocol == "file":
                    keep_mode(local, save_path)  # a replaced file keeps its readers
                    os.replace(local, save_path)  # atomic: complete file or none
                else:
                    self._fs.put(local, save_path)
        except OSError as error:
            raise DatasetError(f"Cannot save the model to '{save_path}': {error}") from error
        self._invalidate_cache()

    def _exists(self) -> bool:
        try:
            load_path = get_filepath_str(self._get_load_path(), self._protocol)
        except DatasetError:
            return False
        return self._fs.exists(load_path)

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": str(self._filepath),
            "protocol": self._protocol,
            "version": self._version,
            "save_args": self._save_args,
        }

    def _release(self) -> None:
        super()._release()
        self._invalidate_cache()

    def _invalidate_cache(self) -> None:
        self._fs.invalidate_cache(get_filepath_str(self._filepath, self._protocol))
