"""The servable model package (network + inference settings), versioned, written atomically.

kedro-mlflow's ``MlflowModelLocalFileSystemDataset`` saves a pyfunc folder in
place (a run killed mid-save leaves a half-written package that the next
``inference`` run would load as the newest version) and loads only from its
own path. This dataset writes the package into a temporary sibling folder and
renames it into place, and loads either the newest (or ``--load-versions``)
local version or, when ``model_uri`` is set, any MLflow model URI
(``runs:/<id>/model``, ``models:/chest-xray/3``, ``models:/chest-xray@champion``).

Saves a ``ServableModel``; loads a ready ``Classifier``.

The folder is local by design: ``filepath`` as an object-store URL (``s3://``
...) is refused when the catalog is built, naming it. A package is many files
that MLflow loads from a local folder, and an object store cannot rename a
folder into place; the package reaches other machines through MLflow instead
(logged to the run and registered, so stored in the tracking server's artifact
store, S3 on a team server: ``model_uri: models:/chest-xray@champion``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import AbstractVersionedDataset, DatasetError, Version

from chest_xray.data.files import require_local
from chest_xray.inference.classifier import Classifier
from chest_xray.inference.packaging import ServableModel, load_classifier, save_servable_model


class ServableModelDataset(AbstractVersionedDataset[ServableModel, Classifier]):
    """A local, versioned MLflow pyfunc folder; loads from ``model_uri`` instead when given.

    Example::

        servable_model:
          type: chest_xray.datasets.ServableModelDataset
          filepath: data/06_models/servable_model
          versioned: true
          model_uri: ${runtime_params:model_uri,null}
          trust_package: ${runtime_params:trust_package,false}
    """

    def __init__(
        self,
        *,
        filepath: str,
        version: Version | None = None,
        model_uri: str | None = None,
        trust_package: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        try:
            require_local(
                filepath,
                "servable_model's filepath",
                "an MLflow package is a local folder, shared through MLflow "
                "(model_uri: models:/chest-xray@champion)",
            )
        except ValueError as error:
            raise DatasetError(str(error)) from error
        self._model_uri = model_uri or None
        # Load a package neither record holds (inference/trust.py): a package is code.
        self._trust = bool(trust_package)
        self.metadata = metadata
        super().__init__(
            filepath=PurePosixPath(filepath),
            version=version,
            exists_function=os.path.exists,
            glob_function=_glob,
        )

    def load(self) -> Classifier:
        if self._model_uri is not None:
            return load_classifier(self._model_uri, trust=self._trust)
        try:
            path = Path(str(self._get_load_path()))
        except DatasetError as error:
            raise DatasetError(
                f"No servable model under {self._filepath}: run `kedro run` (training and "
                "evaluation package one), or name one with --params=model_uri=<MLflow model URI>"
            ) from error
        return load_classifier(str(path), trust=self._trust)

    def save(self, data: ServableModel) -> None:
        if not isinstance(data, ServableModel):
            raise DatasetError(
                f"ServableModelDataset saves a ServableModel, got {type(data).__name__}"
            )
        target = Path(str(self._get_save_path()))
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
        try:
            package = scratch / target.name
            save_servable_model(data, package)
            os.replace(package, target)  # atomic: a whole package or none
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _exists(self) -> bool:
        if self._model_uri is not None:
            return True
        try:
            return Path(str(self._get_load_path()), "MLmodel").exists()
        except DatasetError:
            return False

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": str(self._filepath),
            "version": self._version,
            "model_uri": self._model_uri,
        }


def _glob(pattern: str) -> list[str]:
    """Complete packages only (a folder with an ``MLmodel`` file) count as versions."""
    import glob

    return [path for path in glob.glob(pattern) if os.path.exists(os.path.join(path, "MLmodel"))]
