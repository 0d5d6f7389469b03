"""Preprocessing many images: order, fingerprints and incremental re-runs.

The node is called as Kedro calls it (loaders in, PNG bytes and a log out);
the last test runs the real pipeline twice to check the catalog wiring
(``overwrite: false``, the read-only ``*_previous`` / ``*_existing`` entries).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError
from PIL import Image

from chest_xray.data import preprocessing
from chest_xray.data.preprocessing import LOG_COLUMNS, preprocess_all, settings_key
from chest_xray.datasets.image_file_dataset import ImageFileDataset
from chest_xray.datasets.optional_dataset import OptionalDataset
from chest_xray.params import PreprocessingParams
from chest_xray.pipelines.data_processing.nodes import preprocess_images
from chest_xray.tools.demo_data import DemoDatasetFacts
from tests.conftest import RunKedro

SIZE = (24, 32)


def jpeg(seed: int, size: tuple[int, int] = (80, 60)) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


class Source:
    """A raw_images stand-in: partition -> bytes, loadable like a PartitionedDataset,
    listed like a FileListingDataset (a write or a touch changes the file's stamp)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.modified = dict.fromkeys(files, 1000.0)
        self.reads: list[str] = []

    def write(self, name: str, data: bytes) -> None:
        self.files[name] = data
        self.touch(name)

    def touch(self, name: str) -> None:
        self.modified[name] = self.modified.get(name, 1000.0) + 1.0

    def loaders(self) -> dict[str, Callable[[], bytes]]:
        def load(name: str) -> bytes:
            self.reads.append(name)
            return self.files[name]

        return {name: (lambda name=name: load(name)) for name in self.files}

    def listing(self) -> pd.DataFrame:
        names = sorted(self.files)
        return pd.DataFrame(
            {
                "partition": names,
                "size": [len(self.files[n]) for n in names],
                "modified": [repr(self.modified[n]) for n in names],
            }
        )


@pytest.fixture
def source() -> Source:
    files = {f"train/{i}.jpeg": jpeg(i) for i in range(6)}
    files["train/broken.jpeg"] = b"not an image"
    return Source(files)


def index_of(source: Source) -> pd.DataFrame:
    partitions = sorted(source.files)
    return pd.DataFrame(
        {
            "image_id": [p.removesuffix(".jpeg") for p in partitions],
            "raw_partition": partitions,
        }
    )


def params(**overrides: object) -> PreprocessingParams:
    return PreprocessingParams(image_size=SIZE, workers=1, **overrides)


def run(
    source: Source,
    settings: PreprocessingParams,
    previous: tuple[dict[str, bytes], pd.DataFrame] | None = None,
) -> tuple[dict[str, bytes], pd.DataFrame]:
    """One node run; ``previous`` is what the last run left on disk (PNGs, log)."""
    pngs, log = previous if previous else ({}, None)
    existing = pd.DataFrame({"partition": sorted(pngs), "size": 1, "modified": ""})
    source.reads.clear()
    return preprocess_images(
        source.loaders(), index_of(source), settings, log, existing, source.listing()
    )


def roundtrip(log: pd.DataFrame) -> pd.DataFrame:
    """The log as the catalog saves and reloads it (CSV, keep_default_na=False)."""
    buffer = io.StringIO()
    log.to_csv(buffer, index=False)
    buffer.seek(0)
    text = {"source_sha256": str, "source_stamp": str, "settings": str}
    return pd.read_csv(buffer, keep_default_na=False, dtype=text)


def on_disk(first: tuple[dict[str, bytes], pd.DataFrame]) -> tuple[dict[str, bytes], pd.DataFrame]:
    return first[0], roundtrip(first[1])


def forbid_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("an unchanged image was decoded again")

    monkeypatch.setattr(preprocessing, "preprocess", fail)


def test_first_run_processes_everything_and_records_fingerprints(source: Source) -> None:
    pngs, log = run(source, params())
    assert list(log.columns) == LOG_COLUMNS
    assert sorted(pngs) == [f"train/{i}" for i in range(6)]
    assert log.set_index("image_id").loc["train/broken", "status"] == "skipped"
    assert log["settings"].eq(settings_key(SIZE, "stretch", True, 1)).all()
    assert log["source_sha256"].str.fullmatch("[0-9a-f]{32}").all()
    assert log.set_index("image_id").loc["train/0", "source_stamp"] == (
        f"{len(source.files['train/0.jpeg'])}:1000.0"
    )


def test_second_run_on_unchanged_inputs_reuses_everything(
    source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = on_disk(run(source, params()))
    forbid_decoding(monkeypatch)
    pngs, log = run(source, params(), first)
    assert pngs == {}  # nothing to save: the PNGs on disk stay
    assert source.reads == []  # same size and time: no file was even read
    pd.testing.assert_frame_equal(roundtrip(log), first[1])


def test_a_touched_but_unchanged_file_is_read_not_decoded(
    source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = on_disk(run(source, params()))
    source.touch("train/3.jpeg")
    forbid_decoding(monkeypatch)
    pngs, log = run(source, params(), first)
    assert pngs == {}
    assert source.reads == ["train/3.jpeg"]  # its stamp changed: hashed, same bytes
    stamps = log.set_index("image_id")["source_stamp"]
    assert stamps["train/3"].endswith(":1001.0")  # the new stamp is remembered...
    run(source, params(), on_disk((first[0], log)))
    assert source.reads == []  # ...so the next run reads nothing


def test_without_a_listing_every_file_is_read_and_hashed(
    source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = on_disk(run(source, params()))
    forbid_decoding(monkeypatch)
    existing = pd.DataFrame({"partition": sorted(first[0])})
    source.reads.clear()
    pngs, _ = preprocess_images(source.loaders(), index_of(source), params(), first[1], existing)
    assert pngs == {}
    assert sorted(source.reads) == sorted(source.files)


def test_a_changed_source_byte_reprocesses_that_image_only(source: Source) -> None:
    first = on_disk(run(source, params()))
    data = bytearray(source.files["train/3.jpeg"])
    data[-3] ^= 0xFF  # inside the entropy-coded data, before the EOI marker
    source.write("train/3.jpeg", bytes(data))
    pngs, log = run(source, params(), first)
    assert sorted(pngs) == ["train/3"]
    before = dict(zip(first[1]["image_id"], first[1]["source_sha256"], strict=True))
    after = dict(zip(log["image_id"], log["source_sha256"], strict=True))
    assert [key for key in after if after[key] != before[key]] == ["train/3"]


def test_a_changed_image_size_reprocesses_everything(source: Source) -> None:
    first = on_disk(run(source, params()))
    pngs, log = run(source, PreprocessingParams(image_size=(20, 20), workers=1), first)
    assert len(pngs) == 6
    for png in pngs.values():
        with Image.open(io.BytesIO(png)) as image:
            assert image.size == (20, 20)
    assert log["settings"].str.contains("20x20").all()


def test_a_missing_png_is_regenerated(source: Source) -> None:
    pngs, log = on_disk(run(source, params()))
    del pngs["train/2"]
    again, _ = run(source, params(), (pngs, log))
    assert sorted(again) == ["train/2"]


def test_new_images_are_processed_and_old_ones_reused(source: Source) -> None:
    first = on_disk(run(source, params()))
    source.write("train/new.jpeg", jpeg(99))
    pngs, log = run(source, params(), first)
    assert sorted(pngs) == ["train/new"]
    assert len(log) == 8


def test_incremental_false_reprocesses_everything(source: Source) -> None:
    first = on_disk(run(source, params()))
    pngs, _ = run(source, params(incremental=False), first)
    assert len(pngs) == 6


def test_a_log_without_fingerprints_reuses_nothing(source: Source) -> None:
    pngs, log = on_disk(run(source, params()))
    old = log.drop(columns=["source_sha256", "source_stamp", "settings"])
    again, _ = run(source, params(), (pngs, old))
    assert len(again) == 6


def test_an_undecodable_file_is_not_retried_while_unchanged(
    source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = on_disk(run(source, params()))
    forbid_decoding(monkeypatch)
    _, log = run(source, params(), first)
    row = log.set_index("image_id").loc["train/broken"]
    assert row["status"] == "skipped"
    assert row["reason"] == first[1].set_index("image_id").loc["train/broken", "reason"]


def all_outcomes(
    source: Source, jobs: list[tuple[str, str]], **options: Any
) -> list[preprocessing.Outcome]:
    """preprocess_all over ``source`` on 2 worker threads, with the test's fixed settings."""
    return list(
        preprocess_all(
            source.loaders(),
            jobs,
            size=SIZE,
            resize_mode="stretch",
            jpeg_draft=True,
            png_compress_level=1,
            workers=2,
            **options,
        )
    )


def test_outcomes_keep_job_order_across_workers_and_reuse(source: Source) -> None:
    jobs = [(p.removesuffix(".jpeg"), p) for p in sorted(source.files)] * 3
    reused = {"train/1", "train/4"}
    outcomes = all_outcomes(source, jobs, chunk=2, reuse=lambda key, digest: key in reused)
    assert [o.key for o in outcomes] == [key for key, _ in jobs]
    assert {o.key for o in outcomes if o.reused} == reused
    assert all(o.image is not None for o in outcomes if o.key not in reused | {"train/broken"})


def test_a_run_that_reuses_everything_decodes_nothing(
    source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("an image was preprocessed again")

    monkeypatch.setattr(preprocessing, "preprocess", no_decoding)
    jobs = [(p, p) for p in sorted(source.files)]
    outcomes = all_outcomes(source, jobs, reuse=lambda key, digest: True)
    assert all(o.reused for o in outcomes)


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


@pytest.mark.slow
def test_pipeline_rerun_rewrites_nothing_and_restores_a_deleted_png(
    run_kedro: RunKedro, kedro_project: Path, demo_dataset: DemoDatasetFacts
) -> None:
    params = {"raw_root": str(demo_dataset.root), "preprocessing.workers": 1}
    images = kedro_project / "data/03_primary/images"
    log_file = kedro_project / "data/03_primary/preprocessing_log.csv"
    run_kedro(pipeline_names=["data_processing"], runtime_params=params)
    first = {png: png.stat().st_mtime_ns for png in images.rglob("*.png")}
    first_log = log_file.read_bytes()
    assert first

    run_kedro(pipeline_names=["data_processing"], runtime_params=params)
    assert {png: png.stat().st_mtime_ns for png in images.rglob("*.png")} == first
    assert log_file.read_bytes() == first_log

    gone = sorted(first)[0]
    gone.unlink()
    run_kedro(pipeline_names=["data_processing"], runtime_params=params)
    after = {png: png.stat().st_mtime_ns for png in images.rglob("*.png")}
    assert set(after) == set(first)
    assert {png for png in after if after[png] != first.get(png)} == {gone}
    assert log_file.read_bytes() == first_log

    # A raw file touched but unchanged: hashed again, not decoded; its new stamp is logged.
    raw = next(demo_dataset.root.rglob("*.jpeg"))
    stat = raw.stat()
    os.utime(raw, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    run_kedro(pipeline_names=["data_processing"], runtime_params=params)
    assert {png: png.stat().st_mtime_ns for png in images.rglob("*.png")} == after
    before = pd.read_csv(io.BytesIO(first_log), keep_default_na=False, dtype=str)
    now = pd.read_csv(log_file, keep_default_na=False, dtype=str)
    changed = now.compare(before)
    assert list(changed.columns.get_level_values(0).unique()) == ["source_stamp"]
    assert len(changed) == 1
