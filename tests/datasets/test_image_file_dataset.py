"""ImageFileDataset: bytes in, bytes out, atomic writes, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro.io import DatasetError
from kedro_datasets.partitions import PartitionedDataset

from chest_xray.datasets import ImageFileDataset


def test_saved_bytes_load_back_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    dataset = ImageFileDataset(filepath=str(tmp_path / "a" / "b.png"))
    assert not dataset.exists()
    dataset.save(b"\x89PNG data")
    assert dataset.exists()
    assert dataset.load() == b"\x89PNG data"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.png"]  # no temp file left


def test_saving_anything_but_bytes_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="encoded bytes"):
        ImageFileDataset(filepath=str(tmp_path / "x.png")).save("text")  # type: ignore[arg-type]


def test_unwritable_folder_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DatasetError, match=str(blocker)):
        ImageFileDataset(filepath=str(blocker / "x.png")).save(b"x")


def test_failed_write_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "x.png"
    dataset = ImageFileDataset(filepath=str(target))
    dataset.save(b"old")

    def broken_replace(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", broken_replace)
    with pytest.raises(DatasetError, match="disk full"):
        dataset.save(b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]


def test_works_inside_a_partitioned_dataset(tmp_path: Path) -> None:
    images = PartitionedDataset(
        path=str(tmp_path), dataset=ImageFileDataset, filename_suffix=".png"
    )
    images.save({"train/a": b"A", "test/b": b"B"})
    loaded = images.load()
    assert {key: load() for key, load in loaded.items()} == {"train/a": b"A", "test/b": b"B"}
