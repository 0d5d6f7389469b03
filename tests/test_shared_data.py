"""data_processing on the real Kaggle data in ../shared/data (skipped where it is absent)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from tests.conftest import SHARED_DATA, RunKedro

CORONAHACK = SHARED_DATA / "coronahack"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.shared_data,
    pytest.mark.skipif(
        not (CORONAHACK / "Chest_xray_Corona_Metadata.csv").exists(),
        reason=f"real data not found at {CORONAHACK}",
    ),
]


def test_data_processing_on_the_kaggle_train_images(
    run_kedro: RunKedro, kedro_project: Path
) -> None:
    run_kedro(
        env="local",
        pipeline_names=["data_processing"],
        runtime_params={"raw_root": str(CORONAHACK), "preprocessing": {"workers": 2}},
    )
    data = kedro_project / "data"
    index = pd.read_csv(data / "02_intermediate/image_index.csv", keep_default_na=False)
    assert len(index) == 5279
    assert set(index["split"]) == {"train"}  # the TEST images are not in this copy

    dropped = pd.read_csv(data / "08_reporting/dropped_items.csv", keep_default_na=False)
    no_file = dropped[dropped["reason"].str.contains("no image file")]
    assert (no_file["split"] == "train").sum() == 7
    assert (no_file["split"] == "test").sum() == 624

    summary = pd.read_csv(data / "08_reporting/dataset_summary.csv", keep_default_na=False)
    shipped = pd.read_csv(
        CORONAHACK / "Chest_xray_Corona_dataset_Summary.csv", keep_default_na=False
    )
    assert summary["metadata_rows"].sum() == shipped["Image_Count"].sum() == 5910
    train = summary[summary["split"] == "train"]
    assert train["images"].sum() == 5279
    assert (train["metadata_rows"] - train["images"]).sum() == 7
    covid = train[train["label_2"] == "COVID-19"].iloc[0]
    assert (covid["metadata_rows"], covid["images"]) == (58, 51)

    pngs = list((data / "03_primary/images/train").glob("*.png"))
    assert len(pngs) == 5279
    for png in pngs[::500]:
        with Image.open(png) as image:
            assert (image.mode, image.size) == ("L", (300, 300))

    manifest = pd.read_csv(data / "03_primary/split_manifest.csv", keep_default_na=False)
    share = (manifest["split"] == "validation").mean()
    assert abs(share - 0.2) <= 0.01
    normal = manifest.groupby("split")["label"].apply(lambda s: (s == "NORMAL").mean())
    assert abs(normal["train"] - normal["validation"]) <= 0.01
    assert manifest.groupby("patient_id")["split"].nunique().max() == 1
