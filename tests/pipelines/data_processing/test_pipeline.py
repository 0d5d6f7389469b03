"""A real `kedro run --pipelines=data_processing` on generated Kaggle-layout data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from chest_xray.pipelines.data_processing import create_pipeline
from chest_xray.tools.demo_data import DemoDatasetFacts
from tests.conftest import RunKedro

pytestmark = pytest.mark.slow

NODES = [
    "join_metadata",
    "summarise_dataset",
    "preprocess_images",
    "report_dropped_items",
    "split_dataset",
]


def test_pipeline_is_the_four_named_nodes() -> None:
    pipeline = create_pipeline()
    assert sorted(node.name for node in pipeline.nodes) == sorted(NODES)
    assert all("preprocessing" in node.tags for node in pipeline.nodes)


def test_run_on_generated_data(
    run_kedro: RunKedro, kedro_project: Path, demo_dataset: DemoDatasetFacts
) -> None:
    params = {"raw_root": str(demo_dataset.root), "preprocessing.workers": 2}
    run_kedro(pipeline_names=["data_processing"], runtime_params=params)
    data = kedro_project / "data"

    index = pd.read_csv(data / "02_intermediate/image_index.csv", keep_default_na=False)
    expected = sum(demo_dataset.labelled_images.values())
    assert len(index) == expected
    counts = index.groupby(["split", "label"]).size().to_dict()
    assert counts == dict(demo_dataset.labelled_images)

    dropped = pd.read_csv(data / "08_reporting/dropped_items.csv", keep_default_na=False)
    no_row = dropped.loc[dropped["reason"].str.contains("no metadata row"), "file_name"]
    assert sorted(no_row) == sorted(demo_dataset.unlabelled_files)
    no_file = dropped.loc[dropped["reason"].str.contains("no image file")]
    assert sorted(zip(no_file["split"].str.upper(), no_file["file_name"], strict=True)) == sorted(
        demo_dataset.rows_without_file
    )

    pngs = sorted((data / "03_primary/images").rglob("*.png"))
    assert len(pngs) == expected
    for png in pngs[:: max(1, len(pngs) // 25)]:
        with Image.open(png) as image:
            assert (image.mode, image.size) == ("L", (64, 64))  # conf/demo image_size

    manifest = pd.read_csv(data / "03_primary/split_manifest.csv", keep_default_na=False)
    assert sorted(manifest["image_id"]) == sorted(index["image_id"])
    assert set(manifest["split"]) == {"train", "validation", "test"}
    train_side = manifest[manifest["split"] != "test"]
    assert 0.12 < (train_side["split"] == "validation").mean() < 0.28
    ratio = train_side.groupby("split")["label"].apply(lambda s: (s == "NORMAL").mean())
    assert abs(ratio["train"] - ratio["validation"]) < 0.1
    assert train_side.groupby("patient_id")["split"].nunique().max() == 1

    summary = pd.read_csv(data / "08_reporting/dataset_summary.csv", keep_default_na=False)
    shipped = pd.read_csv(demo_dataset.root / "Chest_xray_Corona_dataset_Summary.csv")
    assert summary["metadata_rows"].sum() == shipped["Image_Count"].sum()
    assert summary["images"].sum() == expected
    assert (data / "08_reporting/dataset_summary.png").stat().st_size > 10_000


def test_same_seed_gives_an_identical_manifest(
    run_kedro: RunKedro, kedro_project: Path, demo_dataset: DemoDatasetFacts
) -> None:
    manifest = kedro_project / "data/03_primary/split_manifest.csv"
    params = {"raw_root": str(demo_dataset.root), "preprocessing.workers": 1}
    run_kedro(pipeline_names=["data_processing"], runtime_params=params)
    first = manifest.read_bytes()
    run_kedro(pipeline_names=["data_processing"], runtime_params=params)
    assert manifest.read_bytes() == first
    run_kedro(
        pipeline_names=["data_processing"],
        runtime_params={**params, "split.seed": 7},
        from_nodes=["split_dataset"],
    )
    assert manifest.read_bytes() != first


def test_the_random_split_of_the_write_up_is_a_switch(
    run_kedro: RunKedro, kedro_project: Path, demo_dataset: DemoDatasetFacts
) -> None:
    params = {
        "raw_root": str(demo_dataset.root),
        "preprocessing.workers": 1,
        "split.strategy": "random",
    }
    run_kedro(pipeline_names=["data_processing"], runtime_params=params)
    manifest = pd.read_csv(kedro_project / "data/03_primary/split_manifest.csv")
    train_side = manifest[manifest["split"] != "test"]
    expected = round(0.2 * len(train_side))
    assert abs((train_side["split"] == "validation").sum() - expected) <= 1


def test_bad_label_stops_before_any_image_work(
    run_kedro: RunKedro, kedro_project: Path, demo_dataset: DemoDatasetFacts, tmp_path: Path
) -> None:
    raw = tmp_path / "bad"
    metadata = (demo_dataset.root / "Chest_xray_Corona_Metadata.csv").read_text()
    raw.mkdir()
    (raw / "Chest_xray_Corona_Metadata.csv").write_text(metadata.replace("Pnemonia", "Covid", 1))
    (raw / "Chest_xray_Corona_dataset_Summary.csv").write_bytes(
        (demo_dataset.root / "Chest_xray_Corona_dataset_Summary.csv").read_bytes()
    )
    images = raw / "Coronahack-Chest-XRay-Dataset" / "Coronahack-Chest-XRay-Dataset" / "train"
    images.mkdir(parents=True)
    source = next((demo_dataset.root / "Coronahack-Chest-XRay-Dataset").rglob("*.jpeg"))
    (images / source.name).write_bytes(source.read_bytes())
    with pytest.raises(ValueError, match=r"'Label'.*\['Covid'\]"):
        run_kedro(pipeline_names=["data_processing"], runtime_params={"raw_root": str(raw)})
    assert not (kedro_project / "data/03_primary/images").exists()
