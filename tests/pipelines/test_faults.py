"""Bad input and faults, on real Kedro runs: clear errors, counted skips, nothing lost."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from chest_xray.tools.demo_data import DemoDatasetFacts, write_demo_dataset
from tests.conftest import RunKedro
from tests.pipelines.conftest import IMAGES, METADATA

pytestmark = pytest.mark.slow


def labelled_train_files(raw: Path, n: int) -> list[Path]:
    names = set(pd.read_csv(raw / METADATA, dtype=str)["X_ray_image_name"])
    files = sorted(p for p in (raw / IMAGES / "train").iterdir() if p.name in names)
    return [p for p in files if p.suffix == ".jpeg"][:n]


def read(project: Path, relative: str) -> pd.DataFrame:
    return pd.read_csv(project / "data" / relative, keep_default_na=False)


def test_broken_and_stray_files_are_skipped_counted_and_logged(
    run_kedro: RunKedro, kedro_project: Path, raw_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    truncated, empty, bomb = labelled_train_files(raw_copy, 3)
    truncated.write_bytes(truncated.read_bytes()[:300])
    empty.write_bytes(b"")
    # 10,000 x 10,000 px (over Pillow's 89 Mpx limit) but only ~100 kB on disk
    buffer = io.BytesIO()
    Image.new("L", (10_000, 10_000)).save(buffer, format="JPEG")
    bomb.write_bytes(buffer.getvalue())
    (raw_copy / IMAGES / "train" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (raw_copy / IMAGES / "train" / "notes.txt").write_text("radiologist notes\n")

    with caplog.at_level(logging.WARNING):
        run_kedro(
            pipeline_names=["data_processing"],
            runtime_params={"raw_root": str(raw_copy), "preprocessing.workers": 1},
        )

    dropped = read(kedro_project, "08_reporting/dropped_items.csv")
    reasons = dict(zip(dropped["file_name"], dropped["reason"], strict=True))
    assert "cannot decode" in reasons[truncated.name]
    assert "empty file" in reasons[empty.name]
    assert "too large" in reasons[bomb.name]
    assert "no metadata row" in reasons[".DS_Store"]
    assert "no metadata row" in reasons["notes.txt"]
    for name in (truncated.name, empty.name, bomb.name):
        assert name.split(".")[0] in caplog.text  # logged with its name

    manifest = read(kedro_project, "03_primary/split_manifest.csv")
    broken = {f"train/{p.stem}" for p in (truncated, empty, bomb)}
    assert not broken & set(manifest["image_id"])
    index = read(kedro_project, "02_intermediate/image_index.csv")
    assert len(manifest) == len(index) - 3  # the run went on with every other image


def test_missing_column_stops_before_any_image_work(
    run_kedro: RunKedro, kedro_project: Path, raw_copy: Path
) -> None:
    table = pd.read_csv(raw_copy / METADATA, dtype=str, keep_default_na=False)
    table.drop(columns="Dataset_type").to_csv(raw_copy / METADATA, index=False)
    with pytest.raises(ValueError, match=r"Chest_xray_Corona_Metadata\.csv.*\['Dataset_type'\]"):
        run_kedro(pipeline_names=["data_processing"], runtime_params={"raw_root": str(raw_copy)})
    assert not (kedro_project / "data/03_primary").exists()


def test_missing_image_folder_names_the_path(
    run_kedro: RunKedro, kedro_project: Path, raw_copy: Path
) -> None:
    shutil.rmtree(raw_copy / IMAGES)
    with pytest.raises(Exception, match=str(raw_copy / IMAGES)):
        run_kedro(pipeline_names=["data_processing"], runtime_params={"raw_root": str(raw_copy)})


def test_no_image_left_after_the_join_is_an_error(
    run_kedro: RunKedro, kedro_project: Path, raw_copy: Path
) -> None:
    table = pd.read_csv(raw_copy / METADATA, dtype=str, keep_default_na=False)
    table["X_ray_image_name"] = "renamed-" + table["X_ray_image_name"]
    table.to_csv(raw_copy / METADATA, index=False)
    with pytest.raises(ValueError, match="No image is left after joining"):
        run_kedro(pipeline_names=["data_processing"], runtime_params={"raw_root": str(raw_copy)})


def test_a_class_absent_after_the_split_stops_before_training(
    run_kedro: RunKedro, kedro_project: Path, raw_copy: Path
) -> None:
    table = pd.read_csv(raw_copy / METADATA, dtype=str, keep_default_na=False)
    table.loc[table["Dataset_type"] == "TRAIN", "Label"] = "Normal"
    table.to_csv(raw_copy / METADATA, index=False)
    with pytest.raises(ValueError, match=r"split has no \['PNEUMONIA'\]"):
        run_kedro(runtime_params={"raw_root": str(raw_copy), "preprocessing.workers": 1})
    assert not (kedro_project / "data/06_models").exists()


def test_no_test_image_stops_a_run_that_evaluates_before_training(
    run_kedro: RunKedro, kedro_project: Path, raw_copy: Path
) -> None:
    for image in (raw_copy / IMAGES / "test").iterdir():
        image.unlink()  # as the shared copy of the Kaggle download: TEST rows, no files
    params = {"raw_root": str(raw_copy), "preprocessing.workers": 1}
    with pytest.raises(ValueError, match=r"test split is empty.*stopped before training"):
        run_kedro(runtime_params=params)
    assert not (kedro_project / "data/06_models").exists()
    assert not (kedro_project / "data/08_reporting/training_history.json").exists()
    run_kedro(pipeline_names=["data_processing"], runtime_params=params)  # evaluates nothing
    manifest = read(kedro_project, "03_primary/split_manifest.csv")
    assert "test" not in set(manifest["split"]) and len(manifest)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"preprocessing.image_size": [0, 300]}, "image_size"),
        ({"split.validation_fraction": 1.5}, "validation_fraction"),
        ({"training.optimizer.name": "adagrad-typo"}, "optimizer.name"),
        ({"training.epochs": -1}, "epochs"),
    ],
)
def test_invalid_parameters_are_rejected_at_start(
    run_kedro: RunKedro,
    kedro_project: Path,
    demo_dataset: DemoDatasetFacts,
    params: dict,
    field: str,
) -> None:
    with pytest.raises(Exception, match=field.rsplit(".", maxsplit=1)[-1]):
        run_kedro(runtime_params={"raw_root": str(demo_dataset.root), **params})
    assert not (kedro_project / "data/02_intermediate").exists()  # no node ran


def test_unwritable_output_folder_is_named(
    run_kedro: RunKedro, kedro_project: Path, demo_dataset: DemoDatasetFacts
) -> None:
    blocked = kedro_project / "data/03_primary"
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("a file where the folder should be")  # also stops root
    with pytest.raises(Exception, match="03_primary"):
        run_kedro(
            pipeline_names=["data_processing"],
            runtime_params={"raw_root": str(demo_dataset.root), "preprocessing.workers": 1},
        )


def checksums(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def small_learnable(tmp_path_factory: pytest.TempPathFactory) -> DemoDatasetFacts:
    return write_demo_dataset(tmp_path_factory.mktemp("raw") / "coronahack", n_train=240, seed=3)


def test_full_run_leaves_raw_data_untouched_and_is_reproducible(
    run_kedro: RunKedro, kedro_project: Path, small_learnable: DemoDatasetFacts
) -> None:
    before = checksums(small_learnable.root)
    params = {
        "raw_root": str(small_learnable.root),
        "preprocessing.workers": 1,
        "training.deterministic_ops": True,
        "training.epochs": 3,
    }
    run_kedro(runtime_params=params)
    first = json.loads((kedro_project / "data/08_reporting/test_metrics.json").read_text())
    manifest = (kedro_project / "data/03_primary/split_manifest.csv").read_bytes()
    predictions = read(kedro_project, "07_model_output/test_predictions.csv")

    run_kedro(runtime_params=params)
    assert (kedro_project / "data/03_primary/split_manifest.csv").read_bytes() == manifest
    assert json.loads((kedro_project / "data/08_reporting/test_metrics.json").read_text()) == first
    again = read(kedro_project, "07_model_output/test_predictions.csv")
    np.testing.assert_array_equal(again["probability"], predictions["probability"])
    assert checksums(small_learnable.root) == before
