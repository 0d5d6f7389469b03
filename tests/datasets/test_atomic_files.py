"""AtomicCSVDataset and AtomicJSONDataset: the parents' bytes, but never a half-written file."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pandas as pd
import pytest
from kedro.io import DatasetError
from kedro_datasets.json import JSONDataset
from kedro_datasets.pandas import CSVDataset

from chest_xray.data import files
from chest_xray.datasets import AtomicCSVDataset, AtomicJSONDataset

TABLE = pd.DataFrame({"image_id": ["train/a", "test/é"], "probability": [0.25, 0.5]})


def test_the_files_are_byte_for_byte_the_parents(tmp_path: Path) -> None:
    args = {"save_args": {"index": False}}
    AtomicCSVDataset(filepath=str(tmp_path / "a.csv"), **args).save(TABLE)
    CSVDataset(filepath=str(tmp_path / "b.csv"), **args).save(TABLE)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    report = {"test": {"auc": 0.9, "n": 3}, "classes": ["NORMAL", "PNEUMONIA"]}
    AtomicJSONDataset(filepath=str(tmp_path / "a.json"), save_args={"indent": 2}).save(report)
    JSONDataset(filepath=str(tmp_path / "b.json"), save_args={"indent": 2}).save(report)
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert AtomicJSONDataset(filepath=str(tmp_path / "a.json")).load() == report


def test_a_full_disk_keeps_the_previous_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = AtomicCSVDataset(filepath=str(tmp_path / "log.csv"), save_args={"index": False})
    dataset.save(TABLE)
    before = (tmp_path / "log.csv").read_bytes()

    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, handle: object) -> None:
            self.handle = handle

        def __enter__(self) -> FullDisk:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()  # type: ignore[attr-defined]

        def write(self, data: bytes) -> None:
            self.handle.write(data[: len(data) // 2])  # type: ignore[attr-defined]
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fdopen", lambda *a, **k: FullDisk(real_fdopen(*a, **k)))
    with pytest.raises(DatasetError, match=r"log\.csv.*No space left"):
        dataset.save(pd.concat([TABLE] * 100))
    assert (tmp_path / "log.csv").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["log.csv"]  # no temporary file left


def test_data_that_cannot_be_written_leaves_no_file(tmp_path: Path) -> None:
    dataset = AtomicJSONDataset(filepath=str(tmp_path / "metrics.json"))
    with pytest.raises(DatasetError, match="not JSON serializable"):
        dataset.save({"auc": object()})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["umask-022", "umask-077"])
def test_the_datasets_files_follow_the_umask_and_keep_a_replaced_files_mode(
    tmp_path: Path, umask: int
) -> None:
    """Issue #24, item 13: every output was 0600, an existing 0644 one too."""
    previous = os.umask(umask)
    try:
        csv = AtomicCSVDataset(filepath=str(tmp_path / "a.csv"))
        csv.save(TABLE)
        assert (tmp_path / "a.csv").stat().st_mode & 0o777 == 0o666 & ~umask
        (tmp_path / "b.json").write_text("{}")
        (tmp_path / "b.json").chmod(0o644)
        AtomicJSONDataset(filepath=str(tmp_path / "b.json")).save({"auc": 0.5})
        assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(previous)
