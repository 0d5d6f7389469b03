"""Nothing stale, damaged, leaked or mislinked is trusted: each case built, then a real
`kedro run` of data_processing (the PNG and checkpoint cases are in
tests/data/test_preprocessing.py and tests/modeling/test_trainer.py)."""

from __future__ import annotations

import shutil
import unicodedata
from pathlib import Path

import pandas as pd
import pytest

from chest_xray.tools.demo_data import DemoDatasetFacts
from tests.conftest import RunKedro
from tests.pipelines.conftest import IMAGES, METADATA

pytestmark = pytest.mark.slow


def read(project: Path, relative: str) -> pd.DataFrame:
    return pd.read_csv(project / "data" / relative, keep_default_na=False, dtype=str)


def metadata(raw: Path) -> pd.DataFrame:
    return pd.read_csv(raw / METADATA, dtype=str, keep_default_na=False)


def run_data_processing(run_kedro: RunKedro, raw: Path) -> None:
    run_kedro(
        pipeline_names=["data_processing"],
        runtime_params={"raw_root": str(raw), "preprocessing.workers": 1},
    )


def test_a_symlinked_split_folder_is_followed(
    run_kedro: RunKedro, kedro_project: Path, raw_copy: Path, tmp_path: Path
) -> None:
    """``train -> /mnt/disk2/train``: before, one stray "file" and the whole split dropped."""
    elsewhere = tmp_path / "disk2" / "train"
    shutil.move(raw_copy / IMAGES / "train", elsewhere)
    (raw_copy / IMAGES / "train").symlink_to(elsewhere, target_is_directory=True)
    run_data_processing(run_kedro, raw_copy)
    manifest = read(kedro_project, "03_primary/split_manifest.csv")
    assert {"train", "validation", "test"} <= set(manifest["split"])
    dropped = read(kedro_project, "08_reporting/dropped_items.csv")
    assert not dropped["reason"].str.contains("outside the train/ and test/").any()


def test_a_dangling_symlink_is_skipped_and_listed(
    run_kedro: RunKedro, kedro_project: Path, raw_copy: Path, tmp_path: Path
) -> None:
    """Before, the whole preprocess_images node failed with a DatasetError."""
    name = metadata(raw_copy).query("Dataset_type == 'TRAIN'")["X_ray_image_name"].iloc[0]
    image = raw_copy / IMAGES / "train" / name
    image.unlink()
    image.symlink_to(tmp_path / "unmounted" / name)
    run_data_processing(run_kedro, raw_copy)
    dropped = read(kedro_project, "08_reporting/dropped_items.csv").set_index("file_name")
    assert "symbolic link" in dropped.loc[name, "reason"]
    assert str(tmp_path / "unmounted") in dropped.loc[name, "reason"]
    manifest = read(kedro_project, "03_primary/split_manifest.csv")
    assert f"train/{Path(name).stem}" not in set(manifest["image_id"])


def test_a_file_named_in_nfd_on_disk_matches_its_nfc_row(
    run_kedro: RunKedro, kedro_project: Path, raw_copy: Path
) -> None:
    """macOS stores NFD; before, "file without a row" and "row without a file" at once."""
    table = metadata(raw_copy)
    row = table.index[table["Dataset_type"] == "TRAIN"][0]
    old = table.loc[row, "X_ray_image_name"]
    nfc = "radiografía-" + old  # "í" as one code point in the CSV...
    table.loc[row, "X_ray_image_name"] = unicodedata.normalize("NFC", nfc)
    table.to_csv(raw_copy / METADATA, index=False)
    nfd = unicodedata.normalize("NFD", nfc)  # ...as "i" + a combining accent on disk
    assert nfd != nfc
    (raw_copy / IMAGES / "train" / old).rename(raw_copy / IMAGES / "train" / nfd)
    run_data_processing(run_kedro, raw_copy)
    dropped = read(kedro_project, "08_reporting/dropped_items.csv")
    assert not dropped["file_name"].map(lambda n: "radiograf" in n).any()
    index = read(kedro_project, "02_intermediate/image_index.csv").set_index("file_name")
    assert index.loc[unicodedata.normalize("NFC", nfc), "raw_partition"] == f"train/{nfd}"


def test_a_test_copy_of_a_train_image_is_dropped_and_reported(
    run_kedro: RunKedro, kedro_project: Path, raw_copy: Path
) -> None:
    """The same bytes in TRAIN and TEST (a leak): dropped from TEST, in both reports."""
    table = metadata(raw_copy)
    source = table[table["Dataset_type"] == "TRAIN"].iloc[0]
    copy = source.copy()
    copy["X_ray_image_name"] = "copy-of-" + source["X_ray_image_name"]
    copy["Dataset_type"] = "TEST"
    pd.concat([table, copy.to_frame().T]).to_csv(raw_copy / METADATA, index=False)
    shutil.copy(
        raw_copy / IMAGES / "train" / source["X_ray_image_name"],
        raw_copy / IMAGES / "test" / copy["X_ray_image_name"],
    )
    run_data_processing(run_kedro, raw_copy)

    leaked = f"test/{Path(copy['X_ray_image_name']).stem}"
    original = f"train/{Path(source['X_ray_image_name']).stem}"
    manifest = read(kedro_project, "03_primary/split_manifest.csv")
    assert leaked not in set(manifest["image_id"])
    assert original in set(manifest["image_id"])
    duplicates = read(kedro_project, "08_reporting/duplicate_images.csv").set_index("image_id")
    assert duplicates.loc[leaked, "action"] == f"dropped from test: same bytes as {original}"
    dropped = read(kedro_project, "08_reporting/dropped_items.csv").set_index("file_name")
    assert dropped.loc[copy["X_ray_image_name"], "reason"].startswith("exact duplicate")

    with pytest.raises(ValueError, match="a leak"):
        run_kedro(
            pipeline_names=["data_processing"],
            runtime_params={"raw_root": str(raw_copy), "split.duplicates": "stop"},
        )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"epochs": 3}, r"'epochs' is no parameter.*did you mean 'training\.epochs'"),
        ({"preprocesing": {"workers": 1}}, r"'preprocesing'.*did you mean 'preprocessing"),
        ({"preprocessing.image_size.0": 0}, r"inside the list preprocessing\.image_size"),
    ],
)
def test_a_mistyped_runtime_parameter_stops_the_run_at_start(
    run_kedro: RunKedro,
    kedro_project: Path,
    demo_dataset: DemoDatasetFacts,
    params: dict,
    message: str,
) -> None:
    """Before, ``--params=epochs=3`` trained the full 60 epochs without a word."""
    with pytest.raises(ValueError, match=message):
        run_kedro(runtime_params={"raw_root": str(demo_dataset.root), **params})
    assert not (kedro_project / "data").exists()  # no node ran


def test_one_number_sets_a_square_image_size_from_the_command_line(
    run_kedro: RunKedro, kedro_project: Path, demo_dataset: DemoDatasetFacts
) -> None:
    run_kedro(
        pipeline_names=["data_processing"],
        runtime_params={
            "raw_root": str(demo_dataset.root),
            "preprocessing.image_size": 40,
            "preprocessing.workers": 1,
        },
    )
    log = read(kedro_project, "03_primary/preprocessing_log.csv")
    assert log["settings"].str.contains(" 40x40 ").all()


def test_a_full_disk_during_the_log_write_keeps_the_old_log_and_a_cut_log_is_refused(
    run_kedro: RunKedro,
    kedro_project: Path,
    demo_dataset: DemoDatasetFacts,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before, a truncated preprocessing_log.csv gave `--from-nodes=split_dataset` (the
    README's own example) a smaller manifest without a warning."""
    from chest_xray.datasets import atomic_files

    params = {"raw_root": str(demo_dataset.root), "preprocessing.workers": 1}
    run_kedro(pipeline_names=["data_processing"], runtime_params=params)
    log_file = kedro_project / "data/03_primary/preprocessing_log.csv"
    whole = log_file.read_bytes()

    real_write = atomic_files.atomic_local_write

    def disk_full_for_the_log(path: str, data: bytes) -> None:
        if path.endswith("preprocessing_log.csv"):
            raise atomic_files.DatasetError(f"Cannot write '{path}': No space left on device")
        real_write(path, data)

    monkeypatch.setattr(atomic_files, "atomic_local_write", disk_full_for_the_log)
    with pytest.raises(Exception, match="No space left"):
        run_kedro(
            pipeline_names=["data_processing"],
            runtime_params={**params, "preprocessing.incremental": False},
        )
    monkeypatch.undo()
    assert log_file.read_bytes() == whole  # the old log, whole

    lines = whole.splitlines(keepends=True)
    log_file.write_bytes(b"".join(lines[: len(lines) // 2]))  # damaged outside the project
    with pytest.raises(ValueError, match=r"preprocessing_log has no row for \d+ of the"):
        run_kedro(
            pipeline_names=["data_processing"], runtime_params=params, from_nodes=["split_dataset"]
        )
