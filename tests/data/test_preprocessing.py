"""Preprocessing many images: order, fingerprints and incremental re-runs that trust no
PNG the log cannot vouch for.

The node is called as Kedro calls it (listings in, PNG bytes and a log out);
test_preprocessing_catalog.py runs the real pipeline to check the catalog wiring
(``overwrite: false``, the read-only ``*_previous`` entries).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from chest_xray.data import preprocessing
from chest_xray.data.imaging import OutputSettings
from chest_xray.data.preprocessing import preprocess_all
from chest_xray.data.reuse import LOG_COLUMNS, LOG_TEXT_COLUMNS, digest
from chest_xray.datasets import FileListingDataset
from chest_xray.datasets.file_listing_dataset import FileListing
from chest_xray.params import PreprocessingParams
from chest_xray.pipelines.data_processing.nodes import preprocess_images

SIZE = (24, 32)


def jpeg(seed: int, size: tuple[int, int] = (80, 60)) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


class Folder:
    """Files with a modification time each, loaded like a FileListingDataset (a listing
    table and lazy loaders); ``reads`` records which files a run opened."""

    def __init__(self, files: dict[str, bytes], modified: float) -> None:
        self.files = dict(files)
        self.modified = dict.fromkeys(files, modified)
        self.reads: list[str] = []

    def touch(self, name: str) -> None:
        self.modified[name] = self.modified.get(name, 0.0) + 1.0

    def listing(self) -> FileListing:
        def load(name: str) -> bytes:
            self.reads.append(name)
            return self.files[name]

        loaders = {name: (lambda name=name: load(name)) for name in self.files}
        return FileListing(table(self.files, self.modified), loaders)


class Source(Folder):
    """The raw images (a write or a touch changes the file's stamp)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__(files, modified=1000.0)

    def write(self, name: str, data: bytes) -> None:
        self.files[name] = data
        self.modified.setdefault(name, 1000.0)
        self.touch(name)


class Disk(Folder):
    """The PNG folder as the catalog leaves it: what each run saved, each with a new stamp."""

    def __init__(self) -> None:
        super().__init__({}, modified=5000.0)

    def save(self, pngs: dict[str, bytes]) -> None:
        for key, png in pngs.items():
            self.files[key] = png
            self.modified.setdefault(key, 5000.0)
            self.touch(key)


def table(files: dict[str, bytes], modified: dict[str, float]) -> pd.DataFrame:
    names = sorted(files)
    return pd.DataFrame(
        {
            "partition": names,
            "size": [len(files[n]) for n in names],
            "modified": [repr(modified[n]) for n in names],
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


class Project:
    """One project's data: the raw source, the PNG folder and the last saved log."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.disk = Disk()
        self.log: pd.DataFrame | None = None

    def run(
        self, settings: PreprocessingParams, *, save_log: bool = True
    ) -> tuple[dict[str, bytes], pd.DataFrame]:
        """One node run, its outputs saved as the catalog would (the log only if ``save_log``:
        False is a run killed between its PNGs and its log)."""
        self.source.reads.clear()
        self.disk.reads.clear()
        pngs, log = preprocess_images(
            self.source.listing(), index_of(self.source), settings, self.log, self.disk.listing()
        )
        self.disk.save(pngs)
        if save_log:
            self.log = roundtrip(log)
        return pngs, log


def roundtrip(log: pd.DataFrame) -> pd.DataFrame:
    """The log as the catalog saves and reloads it (CSV, keep_default_na=False)."""
    buffer = io.StringIO()
    log.to_csv(buffer, index=False)
    buffer.seek(0)
    return pd.read_csv(buffer, keep_default_na=False, dtype=dict.fromkeys(LOG_TEXT_COLUMNS, str))


@pytest.fixture
def project(source: Source) -> Project:
    return Project(source)


def forbid_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("an unchanged image was decoded again")

    monkeypatch.setattr(preprocessing, "preprocess", fail)


def test_first_run_processes_everything_and_records_fingerprints(project: Project) -> None:
    pngs, log = project.run(params())
    assert list(log.columns) == LOG_COLUMNS
    assert sorted(pngs) == [f"train/{i}" for i in range(6)]
    rows = log.set_index("image_id")
    assert rows.loc["train/broken", "status"] == "skipped"
    assert log["settings"].eq(OutputSettings(SIZE).key).all()
    assert log["source_sha256"].str.fullmatch("[0-9a-f]{32}").all()
    assert (
        rows.loc["train/0", "source_stamp"] == f"{len(project.source.files['train/0.jpeg'])}:1000.0"
    )
    ok = rows[rows["status"] == "ok"]
    assert (ok["output_sha256"] == [digest(pngs[key]) for key in ok.index]).all()
    assert (ok["output_stamp"] == "").all()  # known once the catalog has written the PNG


def test_reruns_on_unchanged_inputs_reuse_everything_and_soon_read_nothing(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, first = project.run(params())
    forbid_decoding(monkeypatch)
    pngs, log = project.run(params())
    assert pngs == {}  # nothing to save: the PNGs on disk stay
    assert project.source.reads == []  # same size and time: no source file was even read
    assert sorted(project.disk.reads) == [f"train/{i}" for i in range(6)]  # each PNG checked once
    # Only the PNGs' stamps were added to the log.
    changed = roundtrip(log).compare(roundtrip(first))
    assert set(changed.columns.get_level_values(0)) == {"output_stamp"}
    project.run(params())
    assert project.source.reads == project.disk.reads == []


def test_a_touched_but_unchanged_file_is_read_not_decoded(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.run(params())
    project.source.touch("train/3.jpeg")
    forbid_decoding(monkeypatch)
    pngs, log = project.run(params())
    assert pngs == {}
    assert project.source.reads == ["train/3.jpeg"]  # its stamp changed: hashed, same bytes
    stamps = log.set_index("image_id")["source_stamp"]
    assert stamps["train/3"].endswith(":1001.0")  # the new stamp is remembered...
    project.run(params())
    assert project.source.reads == []  # ...so the next run reads nothing


def test_a_changed_source_byte_reprocesses_that_image_only(project: Project) -> None:
    _, first = project.run(params())
    data = bytearray(project.source.files["train/3.jpeg"])
    data[-3] ^= 0xFF  # inside the entropy-coded data, before the EOI marker
    project.source.write("train/3.jpeg", bytes(data))
    pngs, log = project.run(params())
    assert sorted(pngs) == ["train/3"]
    before = dict(zip(first["image_id"], first["source_sha256"], strict=True))
    after = dict(zip(log["image_id"], log["source_sha256"], strict=True))
    assert [key for key in after if after[key] != before[key]] == ["train/3"]


def test_a_changed_image_size_reprocesses_everything(project: Project) -> None:
    project.run(params())
    pngs, log = project.run(PreprocessingParams(image_size=(20, 20), workers=1))
    assert len(pngs) == 6
    for png in pngs.values():
        with Image.open(io.BytesIO(png)) as image:
            assert image.size == (20, 20)
    assert log["settings"].str.contains("20x20").all()


def test_pngs_of_a_run_killed_before_its_log_are_not_trusted(
    project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    """Settings B write their PNGs, the run dies before the log; back to settings A, the
    log's rows still match A, but the PNGs on disk are B's: every one is made again."""
    project.run(params())
    project.run(PreprocessingParams(image_size=(20, 20), workers=1), save_log=False)
    pngs, log = project.run(params())
    assert sorted(pngs) == [f"train/{i}" for i in range(6)]
    for png in project.disk.files.values():
        with Image.open(io.BytesIO(png)) as image:
            assert image.size == (SIZE[1], SIZE[0])
    assert "Made 6 PNG(s) again" in caplog.text
    assert log["settings"].eq(OutputSettings(SIZE).key).all()


def test_a_damaged_png_is_made_again(project: Project) -> None:
    project.run(params())
    project.run(params())  # the PNGs' stamps are now recorded
    project.disk.save({"train/4": b"\x89PNG truncated"})
    pngs, _ = project.run(params())
    assert sorted(pngs) == ["train/4"]
    assert project.disk.reads == ["train/4"]  # only the PNG whose stamp changed is read


def test_a_png_damaged_in_place_is_made_again_by_a_verifying_run(project: Project) -> None:
    project.run(params())
    project.run(params())  # the PNGs' stamps are now recorded
    png = project.disk.files["train/4"]
    project.disk.files["train/4"] = png[:-8] + b"\x00" * 8  # same size, same stamp
    pngs, _ = project.run(params())
    assert pngs == {}  # a plain rerun trusts the unchanged stamp (as make does)
    pngs, _ = project.run(params(verify_pngs=True))
    assert sorted(pngs) == ["train/4"]
    assert pngs["train/4"] == png
    assert len(project.disk.reads) == 6  # every reused PNG was read and hashed


def test_a_missing_png_is_regenerated(project: Project) -> None:
    project.run(params())
    del project.disk.files["train/2"]
    pngs, _ = project.run(params())
    assert sorted(pngs) == ["train/2"]


def test_new_images_are_processed_and_old_ones_reused(project: Project) -> None:
    project.run(params())
    project.source.write("train/new.jpeg", jpeg(99))
    pngs, log = project.run(params())
    assert sorted(pngs) == ["train/new"]
    assert len(log) == 8


def test_incremental_false_reprocesses_everything(project: Project) -> None:
    project.run(params())
    pngs, _ = project.run(params(incremental=False))
    assert len(pngs) == 6


def test_a_log_without_fingerprints_reuses_nothing(project: Project) -> None:
    project.run(params())
    assert project.log is not None
    project.log = project.log.drop(columns=["output_sha256", "output_stamp"])
    pngs, _ = project.run(params())
    assert len(pngs) == 6


def test_an_undecodable_file_is_not_retried_while_unchanged(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, first = project.run(params())
    forbid_decoding(monkeypatch)
    _, log = project.run(params())
    row = log.set_index("image_id").loc["train/broken"]
    assert row["status"] == "skipped"
    assert row["reason"] == first.set_index("image_id").loc["train/broken", "reason"]


def test_a_dangling_symbolic_link_is_skipped_naming_its_target(tmp_path: Path) -> None:
    folder = tmp_path / "raw"
    (folder / "train").mkdir(parents=True)
    (folder / "train/0.jpeg").write_bytes(jpeg(0))
    (folder / "train/gone.jpeg").symlink_to(tmp_path / "elsewhere/gone.jpeg")
    listing = FileListingDataset(path=str(folder)).load()
    index = pd.DataFrame({"image_id": ["train/0", "train/gone"], "raw_partition": sorted(listing)})
    pngs, log = preprocess_images(listing, index, params(), None, FileListing(table({}, {}), {}))
    assert sorted(pngs) == ["train/0"]
    row = log.set_index("image_id").loc["train/gone"]
    assert row["status"] == "skipped"
    assert "symbolic link" in row["reason"]
    assert str(tmp_path / "elsewhere/gone.jpeg") in row["reason"]


def all_outcomes(
    source: Source, jobs: list[tuple[str, str]], **options: Any
) -> list[preprocessing.Outcome]:
    """preprocess_all over ``source`` on 2 worker threads, with the test's fixed settings."""
    return list(preprocess_all(source.listing(), jobs, OutputSettings(SIZE), workers=2, **options))


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
