"""Dataset summary and its agreement with Kaggle's shipped summary."""

from __future__ import annotations

import pandas as pd

from chest_xray.metadata import join_files, normalise_metadata
from chest_xray.params import MetadataParams
from chest_xray.summary import compare_with_shipped, summarise

LABELS = MetadataParams().label_map


def test_summary_counts_rows_and_images_and_matches_shipped() -> None:
    metadata = pd.DataFrame(
        {
            "X_ray_image_name": ["a.jpeg", "b.jpeg", "c.jpeg", "d.jpeg"],
            "Label": ["Normal", "Pnemonia", "Pnemonia", "Pnemonia"],
            "Dataset_type": ["TRAIN", "TRAIN", "TRAIN", "TEST"],
            "Label_1_Virus_category": ["", "Virus", "Virus", "bacteria"],
            "Label_2_Virus_category": ["", "COVID-19", "COVID-19", ""],
        }
    )
    tidy = normalise_metadata(metadata, LABELS)
    index, _ = join_files(tidy, ["train/a.jpeg", "train/b.jpeg", "test/d.jpeg"])
    summary = summarise(tidy, index)
    covid = summary[summary["label_2"] == "COVID-19"].iloc[0]
    assert (covid["split"], covid["metadata_rows"], covid["images"]) == ("train", 2, 1)
    assert summary["metadata_rows"].sum() == 4 and summary["images"].sum() == 3

    shipped = pd.DataFrame(
        {
            "Label": ["Normal", "Pnemonia", "Pnemonia"],
            "Label_1_Virus_category": ["", "Virus", "bacteria"],
            "Label_2_Virus_category": ["", "COVID-19", ""],
            "Image_Count": [1, 2, 1],
        }
    )
    check = compare_with_shipped(summary, shipped, LABELS)
    assert (check["shipped"] == check["metadata_rows"]).all()
    assert len(check) == 3 and (check["images"] == 1).all()
