"""FileListingDataset: the same partition ids as PartitionedDataset, with size and time, lazy
loaders, and symbolic links followed."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from kedro.io import DatasetError
from kedro_datasets.partitions import PartitionedDataset

from chest_xray.datasets import FileListingDataset
from chest_xray.datasets.file_listing_dataset import DANGLING, FileListing


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
    listing = FileListingDataset(path=str(folder), filename_suffix=".png").load()
    table = listing.table
    assert listing["train/b"]() == b"bbbb"
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
        assert listed.table["partition"].tolist() == sorted(partitioned) == list(listed)


def test_a_changed_file_changes_its_row(folder: Path) -> None:
    dataset = FileListingDataset(path=str(folder), filename_suffix=".png")
    before = dataset.load().table.set_index("partition")
    (folder / "train/b.png").write_bytes(b"bbbbbb")
    os.utime(folder / "train/b.png", ns=(1_800_000_000_000_000_000,) * 2)
    after = dataset.load().table.set_index("partition")
    assert after.loc["train/b", "size"] == 6
    assert after.loc["train/b", "modified"] != before.loc["train/b", "modified"]
    assert after.loc["train/a"].tolist() == before.loc["train/a"].tolist()


def test_a_missing_folder_is_an_empty_table(tmp_path: Path) -> None:
    dataset = FileListingDataset(path=str(tmp_path / "nothing-yet"))
    listing = dataset.load()
    assert len(listing) == 0
    assert list(listing.table.columns) == ["partition", "size", "modified"]
    assert not dataset.exists()


def test_saving_a_listing_is_refused(folder: Path) -> None:
    with pytest.raises(DatasetError, match="read only"):
        FileListingDataset(path=str(folder)).save(FileListing(pd.DataFrame(), {}))


def test_symbolic_links_to_folders_and_files_are_followed(tmp_path: Path) -> None:
    """``train -> /mnt/disk2/train``: the split's files, under the link's name."""
    elsewhere = tmp_path / "disk2/train"
    elsewhere.mkdir(parents=True)
    (elsewhere / "a.jpeg").write_bytes(b"aa")
    (tmp_path / "other.jpeg").write_bytes(b"ooo")
    root = tmp_path / "dataset"
    (root / "test").mkdir(parents=True)
    (root / "train").symlink_to(elsewhere)
    (root / "test/b.jpeg").symlink_to(tmp_path / "other.jpeg")
    (root / "test/loop").symlink_to(root)  # a cycle is walked once
    listing = FileListingDataset(path=str(root)).load()
    assert sorted(listing) == ["test/b.jpeg", "train/a.jpeg"]
    assert listing["train/a.jpeg"]() == b"aa"
    assert listing.table.set_index("partition").loc["test/b.jpeg", "size"] == 3


def test_a_dangling_link_is_listed_and_its_loader_names_the_target(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "train/gone.jpeg").symlink_to(tmp_path / "nowhere.jpeg")
    listing = FileListingDataset(path=str(tmp_path)).load()
    assert listing.table["size"].tolist() == [DANGLING]
    with pytest.raises(FileNotFoundError, match=r"nowhere\.jpeg"):
        listing["train/gone.jpeg"]()


def test_a_required_folder_that_is_missing_or_empty_is_named(tmp_path: Path) -> None:
    for folder in (tmp_path / "missing", tmp_path):
        with pytest.raises(DatasetError, match=f"No files found in file://{folder}"):
            FileListingDataset(path=str(folder), required=True).load()
