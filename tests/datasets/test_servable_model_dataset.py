"""ServableModelDataset: versioned packages written whole, loaded from a folder or a URI."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro.io.core import DatasetError, Version

from chest_xray.datasets import ServableModelDataset
from chest_xray.inference.packaging import ServableModel
from tests.inference.conftest import tiny_model, tiny_settings


def servable() -> ServableModel:
    return ServableModel(tiny_model(), tiny_settings())


def test_saves_a_version_and_loads_the_newest(tmp_path: Path) -> None:
    folder = tmp_path / "servable_model"
    ServableModelDataset(
        filepath=str(folder), version=Version(None, "2026-01-01T00.00.00.000Z")
    ).save(servable())
    ServableModelDataset(
        filepath=str(folder), version=Version(None, "2026-02-01T00.00.00.000Z")
    ).save(servable())
    loaded = ServableModelDataset(filepath=str(folder), version=Version(None, None)).load()
    assert "2026-02-01" in loaded.source
    assert loaded.settings == tiny_settings()
    assert sorted(p.name for p in folder.iterdir()) == [
        "2026-01-01T00.00.00.000Z",
        "2026-02-01T00.00.00.000Z",
    ]  # no temporary folder left beside them


def test_a_half_written_version_is_never_the_newest(tmp_path: Path) -> None:
    folder = tmp_path / "servable_model"
    ServableModelDataset(
        filepath=str(folder), version=Version(None, "2026-01-01T00.00.00.000Z")
    ).save(servable())
    broken = folder / "2026-03-01T00.00.00.000Z" / "servable_model"
    broken.mkdir(parents=True)  # e.g. a copy cut short: no MLmodel
    loaded = ServableModelDataset(filepath=str(folder), version=Version(None, None)).load()
    assert "2026-01-01" in loaded.source


def test_without_a_package_the_error_says_how_to_make_one(tmp_path: Path) -> None:
    dataset = ServableModelDataset(filepath=str(tmp_path / "none"), version=Version(None, None))
    assert not dataset.exists()
    with pytest.raises(DatasetError, match="model_uri"):
        dataset.load()


def test_model_uri_wins_over_the_local_versions(tmp_path: Path) -> None:
    source = tmp_path / "servable_model"
    ServableModelDataset(
        filepath=str(source), version=Version(None, "2026-01-01T00.00.00.000Z")
    ).save(servable())
    package = source / "2026-01-01T00.00.00.000Z" / "servable_model"
    dataset = ServableModelDataset(filepath=str(tmp_path / "elsewhere"), model_uri=str(package))
    assert dataset.load().source == str(package)


def test_saving_something_else_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="saves a ServableModel"):
        ServableModelDataset(filepath=str(tmp_path / "x")).save(tiny_model())  # type: ignore[arg-type]


def test_a_package_follows_the_umask(tmp_path: Path) -> None:
    """Issue #24, item 13: written in a private (0700) scratch folder, then renamed; the
    package and every file written for it get the umask's modes. (``code/`` holds MLflow's
    copy of the package's source, made with the source files' own modes, as ``cp -p``, and so
    is the models-from-code file ``served_model.py``.)"""
    import os

    folder = tmp_path / "servable_model"
    previous = os.umask(0o027)
    try:
        ServableModelDataset(
            filepath=str(folder), version=Version(None, "2026-01-01T00.00.00.000Z")
        ).save(servable())
    finally:
        os.umask(previous)
    package = folder / "2026-01-01T00.00.00.000Z" / "servable_model"
    copied = package / "code"
    # served_model.py too: MLflow copies the models-from-code file with its source's mode.
    written = [
        package,
        *(p for p in package.rglob("*") if copied not in p.parents and p.name != "served_model.py"),
    ]
    modes = {p.relative_to(package).as_posix(): p.stat().st_mode & 0o777 for p in written}
    expected = {name: 0o750 if (package / name).is_dir() else 0o640 for name in modes}
    assert {"MLmodel", "artifacts/model.keras", "code"} <= set(modes)
    assert modes == expected
