"""The project's datasets on a non-local fsspec file system (``memory://`` stands in for an
object store here; tests/integration/test_object_storage.py runs them against a real S3 API)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import fsspec
import mlflow
import pandas as pd
import pytest
from kedro.io import DatasetError
from kedro_mlflow.io.artifacts import MlflowArtifactDataset
from mlflow.tracking import MlflowClient

from chest_xray.data.reuse import file_stamps
from chest_xray.datasets import (
    AtomicCSVDataset,
    AtomicJSONDataset,
    FileListingDataset,
    ImageFileDataset,
    ServableModelDataset,
)

TABLE = pd.DataFrame({"image_id": ["train/a", "test/b"], "probability": [0.25, 0.5]})


@pytest.fixture
def memory() -> Iterator[fsspec.AbstractFileSystem]:
    """fsspec's in-memory file system, emptied after the test (it is process-wide)."""
    fs = fsspec.filesystem("memory")
    yield fs
    if fs.exists("/bucket"):
        fs.rm("/bucket", recursive=True)


def test_tables_and_images_are_stored_whole_as_objects(memory: fsspec.AbstractFileSystem) -> None:
    AtomicCSVDataset(filepath="memory:///bucket/t.csv", save_args={"index": False}).save(TABLE)
    AtomicJSONDataset(filepath="memory:///bucket/m.json").save({"auc": 0.9})
    ImageFileDataset(filepath="memory:///bucket/images/a.png").save(b"\x89PNG...")
    assert memory.cat_file("/bucket/t.csv") == TABLE.to_csv(index=False).encode()
    assert AtomicJSONDataset(filepath="memory:///bucket/m.json").load() == {"auc": 0.9}
    assert memory.cat_file("/bucket/images/a.png") == b"\x89PNG..."
    assert sorted(memory.find("/bucket")) == [
        "/bucket/images/a.png",
        "/bucket/m.json",
        "/bucket/t.csv",
    ]  # no temporary object beside them


def test_a_failed_upload_is_named_and_leaves_the_previous_object(
    memory: fsspec.AbstractFileSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = AtomicCSVDataset(filepath="memory:///bucket/t.csv", save_args={"index": False})
    dataset.save(TABLE)

    def refused(*args: Any, **kwargs: Any) -> None:
        raise PermissionError("Access Denied")

    monkeypatch.setattr(type(memory), "pipe_file", refused)
    with pytest.raises(DatasetError, match=r"memory:///bucket/t\.csv.*Access Denied"):
        dataset.save(pd.concat([TABLE] * 3))
    assert memory.cat_file("/bucket/t.csv") == TABLE.to_csv(index=False).encode()


def test_kedro_mlflow_logs_a_remote_table_from_a_local_copy(
    memory: fsspec.AbstractFileSystem, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kedro-mlflow can only log local files (its issue #15): the bucket gets the object,
    the run the same bytes, under the file's name."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    dataset = MlflowArtifactDataset(
        dataset={
            "type": "chest_xray.datasets.AtomicCSVDataset",
            "filepath": "memory:///bucket/03_primary/split_manifest.csv",
            "save_args": {"index": False},
        },
        artifact_path="data",
    )
    with mlflow.start_run() as run:
        dataset.save(TABLE)
    expected = TABLE.to_csv(index=False).encode()
    assert memory.cat_file("/bucket/03_primary/split_manifest.csv") == expected
    client = MlflowClient()
    assert [a.path for a in client.list_artifacts(run.info.run_id, "data")] == [
        "data/split_manifest.csv"
    ]
    logged = client.download_artifacts(run.info.run_id, "data/split_manifest.csv", str(tmp_path))
    assert Path(logged).read_bytes() == expected
    pd.testing.assert_frame_equal(dataset.load(), TABLE)


def test_an_object_listing_loads_lazily_and_names_its_url(
    memory: fsspec.AbstractFileSystem,
) -> None:
    dataset = FileListingDataset(path="memory:///bucket/images", filename_suffix=".png")
    assert dataset.load().table.empty  # no folder yet: an empty listing
    memory.pipe_file("/bucket/images/train/a.png", b"aa")
    memory.pipe_file("/bucket/images/test/b.png", b"bbbb")
    listing = dataset.load()
    assert listing.table["partition"].tolist() == ["test/b", "train/a"]
    assert listing.table["size"].tolist() == [4, 2]
    assert listing["train/a"]() == b"aa"
    assert listing.root == "memory:///bucket/images"
    with pytest.raises(DatasetError, match=r"No files found in memory:///bucket/empty"):
        FileListingDataset(path="memory:///bucket/empty", required=True).load()


def test_an_objects_stamp_is_its_etag_and_no_stamp_vouches_for_nothing(
    memory: fsspec.AbstractFileSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3's LastModified has one-second resolution; the ETag changes with the content."""
    dataset = FileListingDataset(path="memory:///bucket/raw")
    when = datetime(2026, 11, 30, tzinfo=timezone.utc)
    objects = {
        "/bucket/raw/a.jpeg": {
            "type": "file",
            "size": 3,
            "ETag": '"9a0364b9"',
            "LastModified": when,
        },
        "/bucket/raw/b.jpeg": {"type": "file", "size": 5},  # neither a time nor a tag
    }
    monkeypatch.setattr(dataset._fs, "find", lambda *args, **kwargs: objects)
    table = dataset.load().table
    assert table["modified"].tolist() == ['"9a0364b9"', ""]
    assert file_stamps(table) == {"a.jpeg": '3:"9a0364b9"', "b.jpeg": ""}


def test_the_packaged_model_folder_must_be_local() -> None:
    with pytest.raises(DatasetError, match=r"servable_model's filepath must be a folder on"):
        ServableModelDataset(filepath="s3://bucket/06_models/servable_model")
