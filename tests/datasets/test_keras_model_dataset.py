"""KerasModelDataset: versioned round trips, atomic saves, clear errors, old .h5 files."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from kedro.io import DatasetError
from kedro.io.core import Version

from chest_xray.datasets import KerasModelDataset


def tiny_model() -> keras.Model:
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(2, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_versioned_round_trip_keeps_predictions(tmp_path: Path, suffix: str) -> None:
    model = tiny_model()
    images = np.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")
    dataset = KerasModelDataset(
        filepath=str(tmp_path / f"model{suffix}"),
        version=Version(None, None),
        save_args={"include_optimizer": False},
    )
    assert not dataset.exists()
    dataset.save(model)
    assert dataset.exists()
    loaded = KerasModelDataset(
        filepath=str(tmp_path / f"model{suffix}"), version=Version(None, None)
    ).load()
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0))
    files = [p.name for p in (tmp_path / f"model{suffix}").rglob("*") if p.is_file()]
    assert files == [f"model{suffix}"]  # one version, no temporary leftovers


def test_failed_save_leaves_nothing_to_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(keras.saving, "save_model", crash)
    dataset = KerasModelDataset(filepath=str(tmp_path / "model.keras"), version=Version(None, None))
    with pytest.raises(DatasetError, match=r"model\.keras.*No space left"):
        dataset.save(tiny_model())
    assert not dataset.exists()
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_other_extensions_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"\.keras or \.h5"):
        KerasModelDataset(filepath=str(tmp_path / "model.pkl"))


def test_a_keras_file_leaves_the_optimizer_out_when_asked(tmp_path: Path) -> None:
    """Keras ignores include_optimizer for .keras; the dataset honours it (a third of the size)."""
    model = tiny_model()
    images = np.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")
    model.fit(images, np.array([0, 1, 0, 1]), epochs=1, verbose=0)  # Adam's state exists
    sizes = {}
    for include in (True, False):
        path = tmp_path / f"with_{include}.keras"
        KerasModelDataset(filepath=str(path), save_args={"include_optimizer": include}).save(model)
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")))
            assert ("optimizer" in weights) is include
        assert bool(config.get("compile_config")) is include
        sizes[include] = path.stat().st_size
    assert sizes[False] < sizes[True]
    assert model.optimizer is not None  # the trained model itself keeps its optimizer


def test_an_h5_model_of_an_earlier_version_still_loads(tmp_path: Path) -> None:
    """Models saved before the switch to .keras: Keras' HDF5 file, read by the project's loader."""
    model = tiny_model()
    version = tmp_path / "model.h5" / "2026-11-30T10.00.00.000Z"
    version.mkdir(parents=True)
    keras.saving.save_model(model, version / "model.h5", include_optimizer=False)
    loaded = KerasModelDataset(
        filepath=str(tmp_path / "model.h5"),
        version=Version(None, None),
        load_args={"compile": False},
    ).load()
    images = np.random.default_rng(2).random((3, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0))


def test_a_saved_model_follows_the_umask_and_a_replaced_one_keeps_its_mode(
    tmp_path: Path,
) -> None:
    """Issue #24, item 13 (the model is written by Keras in a private scratch folder)."""
    import os

    target = tmp_path / "model.keras"
    dataset = KerasModelDataset(filepath=str(target), save_args={"include_optimizer": False})
    previous = os.umask(0o027)
    try:
        dataset.save(tiny_model())
        assert target.stat().st_mode & 0o777 == 0o640
        target.chmod(0o644)
        dataset.save(tiny_model())
        assert target.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(previous)
