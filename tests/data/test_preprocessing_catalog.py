"""The catalog's side of incremental preprocessing: ``OptionalDataset`` (the read-only
``*_previous`` entries that hand a run the last run's PNGs and log) and the real
``data_processing`` pipeline, rerun (``overwrite: false``, a deleted PNG, a touched raw
file, a run killed between its PNGs and its log). Split from test_preprocessing.py,
which calls the node directly."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from kedro.io import DatasetError

from chest_xray.datasets import ImageFileDataset, OptionalDataset
from chest_xray.tools.demo_data import DemoDatasetFacts
from tests.conftest import RunKedro

# ------------------------------------------------------------------ OptionalDataset


def test_optional_dataset_is_none_until_the_wrapped_data_exists(tmp_path: Path) -> None:
    log = OptionalDataset(
        dataset={"type": "pandas.CSVDataset", "filepath": str(tmp_path / "log.csv")}
    )
    folder = OptionalDataset(
        dataset={
            "type": "partitions.PartitionedDataset",
            "path": str(tmp_path / "images"),
            "dataset": "chest_xray.datasets.ImageFileDataset",
            "filename_suffix": ".png",
        }
    )
    assert log.load() is None
    assert folder.load() is None
    (tmp_path / "images").mkdir()
    assert folder.load() is None  # an empty folder too
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "log.csv", index=False)
    ImageFileDataset(filepath=str(tmp_path / "images/train/x.png")).save(b"png")
    assert log.load()["a"].tolist() == [1]
    assert list(folder.load()) == ["train/x"]


def test_optional_dataset_is_read_only(tmp_path: Path) -> None:
    dataset = OptionalDataset(dataset={"type": "pandas.CSVDataset", "filepath": str(tmp_path)})
    with pytest.raises(DatasetError, match="read only"):
        dataset.save(pd.DataFrame({"a": [1]}))


def test_a_broken_existing_file_still_fails(tmp_path: Path) -> None:
    (tmp_path / "log.csv").write_bytes(b"\xff\xfe\x00garbage\x00")
    dataset = OptionalDataset(
        dataset={
            "type": "pandas.CSVDataset",
            "filepath": str(tmp_path / "log.csv"),
            "load_args": {"encoding": "ascii"},
        }
    )
    with pytest.raises(DatasetError):
        dataset.load()


# ------------------------------------------------------------------ the real pipeline


def png_times(images: Path) -> dict[Path, int]:
    return {png: png.stat().st_mtime_ns for png in images.rglob("*.png")}


@pytest.mark.slow
def test_pipeline_rerun_rewrites_nothing_and_restores_a_deleted_png(
    run_kedro: RunKedro, kedro_project: Path, demo_dataset: DemoDatasetFacts
) -> None:
    params = {"raw_root": str(demo_dataset.root), "preprocessing.workers": 1}
    images = kedro_project / "data/03_primary/images"
    log_file = kedro_project / "data/03_primary/preprocessing_log.csv"
    run_kedro(pipeline_names=["data_processing"], runtime_params=params)
    first = png_times(images)
    assert first

    # The first rerun checks each PNG's digest once and records its stamp...
    run_kedro(pipeline_names=["data_processing"], runtime_params=params)
    assert png_times(images) == first
    checked = log_file.read_bytes()
    log = pd.read_csv(log_file, keep_default_na=False, dtype=str)
    assert (log.loc[log["status"] == "ok", "output_stamp"] != "").all()
    # ...so the next one changes nothing at all.
    run_kedro(pipeline_names=["data_processing"], runtime_params=params)
    assert png_times(images) == first
    assert log_file.read_bytes() == checked

    gone = sorted(first)[0]
    gone.unlink()
    run_kedro(pipeline_names=["data_processing"], runtime_params=params)
    after = png_times(images)
    assert set(after) == set(first)
    assert {png for png in after if after[png] != first.get(png)} == {gone}

    run_kedro(pipeline_names=["data_processing"], runtime_params=params)  # the new PNG checked

    # A raw file touched but unchanged: hashed again, not decoded; its new stamp is logged.
    before = pd.read_csv(log_file, keep_default_na=False, dtype=str)
    raw = next(demo_dataset.root.rglob("*.jpeg"))
    stat = raw.stat()
    os.utime(raw, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    try:
        run_kedro(pipeline_names=["data_processing"], runtime_params=params)
    finally:
        os.utime(raw, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the dataset is shared
    assert png_times(images) == after
    now = pd.read_csv(log_file, keep_default_na=False, dtype=str)
    changed = now.compare(before)
    assert list(changed.columns.get_level_values(0).unique()) == ["source_stamp"]
    assert len(changed) == 1


@pytest.mark.slow
def test_pipeline_after_a_run_killed_between_pngs_and_log_rebuilds_them(
    run_kedro: RunKedro, kedro_project: Path, demo_dataset: DemoDatasetFacts
) -> None:
    """The issue's case: other settings write their PNGs, the run dies before the log, the
    old settings come back. Before, the rerun said "reused" and kept 48x48 PNGs among
    64x64 ones; now every PNG is the old settings' again."""
    params = {"raw_root": str(demo_dataset.root), "preprocessing.workers": 1}
    images = kedro_project / "data/03_primary/images"
    log_file = kedro_project / "data/03_primary/preprocessing_log.csv"
    run_kedro(pipeline_names=["data_processing"], runtime_params=params)
    good_log = log_file.read_bytes()
    good_pngs = {png: png.read_bytes() for png in images.rglob("*.png")}
    other = {"preprocessing.resize_mode": "pad", "preprocessing.jpeg_draft": False}
    run_kedro(pipeline_names=["data_processing"], runtime_params={**params, **other})
    assert {png: png.read_bytes() for png in images.rglob("*.png")} != good_pngs
    log_file.write_bytes(good_log)  # as if killed after the PNGs, before the log
    run_kedro(pipeline_names=["data_processing"], runtime_params=params)
    assert {png: png.read_bytes() for png in images.rglob("*.png")} == good_pngs
