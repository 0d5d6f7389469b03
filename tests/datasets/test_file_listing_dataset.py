"""FileListingDataset: the same partition ids as PartitionedDataset, with size and time."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from kedro.io import DatasetError
from kedro_datasets.partitions import PartitionedDataset

from chest_xray.datasets import FileListingDataset


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    for name, data in {
        "train/a.png": b"aa",
        "train/b.png": b"bbbb",
        "test/nested/c.png": b"c",
        "train/notes.txt": b"text",
        "train/.tmp-x.part": b"partial",
    }.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_lists_files_with_size_and_modification_time(folder: Path) -> None:
    os.utime(folder / "train/a.png", ns=(1_700_000_000_000_000_000,) * 2)
    table = FileListingDataset(path=str(folder), filename_suffix=".png").load()
    assert table["partition"].tolist() == ["test/nested/c", "train/a", "train/b"]
    assert table["size"].tolist() == [1, 2, 4]
    assert table.set_index("partition").loc["train/a", "modified"] == repr(1_700_000_000.0)
    assert str(table["size"].dtype) == "int64"


def test_partition_ids_match_partitioned_dataset(folder: Path) -> None:
    for suffix in (".png", ""):
        listed = FileListingDataset(path=str(folder), filename_suffix=suffix).load()
        partitioned = PartitionedDataset(
            path=str(folder), dataset="chest_xray.datasets.ImageFileDataset", filename_suffix=suffix
        ).load()
        assert listed["partition"].tolist() == sorted(partitioned)


def test_a_changed_file_changes_its_row(folder: Path) -> None:
    dataset = FileListingDataset(path=str(folder), filename_suffix=".png")
    before = dataset.load().set_index("partition")
    (folder / "train/b.png").write_bytes(b"bbbbbb")
    os.utime(folder / "train/b.png", ns=(1_800_000_000_000_000_000,) * 2)
    after = dataset.load().set_index("partition")
    assert after.loc["train/b", "size"] == 6
    assert after.loc["train/b", "modified"] != before.loc["train/b", "modified"]
    assert after.loc["train/a"].tolist() == before.loc["train/a"].tolist()


def test_a_missing_folder_is_an_empty_table(tmp_path: Path) -> None:
    dataset = FileListingDataset(path=str(tmp_path / "nothing-yet"))
    table = dataset.load()
    assert table.empty
    assert list(table.columns) == ["partition", "size", "modified"]
    assert not dataset.exists()


def test_saving_a_listing_is_refused(folder: Path) -> None:
    with pytest.raises(DatasetError, match="read only"):
        FileListingDataset(path=str(folder)).save(pd.DataFrame({"partition": ["x"]}))
