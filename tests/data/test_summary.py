"""Dataset summary and its agreement with Kaggle's shipped summary."""

from __future__ import annotations

import pandas as pd
import pytest
from matplotlib.figure import Figure

from chest_xray.data.metadata import join_files, normalise_metadata
from chest_xray.data.summary import compare_with_shipped, dataset_summary_figure, summarise
from chest_xray.params import MetadataParams

LABELS = MetadataParams().label_map


def _texts(fig: Figure) -> list[str]:
    return [text.get_text() for ax in fig.axes for text in ax.texts]


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


# ------------------------------------------------------------------------ the chart


def summary_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "split": ["train", "train", "train", "train", "test", "test", "test"],
            "label": [
                *("NORMAL", "PNEUMONIA", "PNEUMONIA", "PNEUMONIA"),
                *("NORMAL", "PNEUMONIA", "PNEUMONIA"),
            ],
            "label_1": ["", "bacteria", "Virus", "Virus", "", "bacteria", "Virus"],
            "label_2": ["", "", "", "COVID-19", "", "", ""],
            "metadata_rows": [10, 20, 6, 3, 4, 7, 2],
            "images": [10, 18, 6, 2, 4, 7, 2],
        }
    )


def test_dataset_summary_stacks_subtypes_per_split_and_label() -> None:
    fig = dataset_summary_figure(summary_table())

    (ax,) = fig.axes
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["NORMAL\ntrain", "PNEUMONIA\ntrain", "NORMAL\ntest", "PNEUMONIA\ntest"]
    # Segments in drawing order: (bar, subtype) with label_2 rows summed into label_1.
    heights = [patch.get_height() for patch in ax.patches]
    assert heights == [10, 18, 8, 4, 7, 2]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["no subtype", "bacteria", "Virus"]
    # Totals on top; train PNEUMONIA lost 3 of 29 metadata rows to missing files.
    assert _texts(fig) == ["10", "26\n(of 29 rows)", "4", "9"]


def test_dataset_summary_rejects_missing_columns() -> None:
    with pytest.raises(ValueError, match="images"):
        dataset_summary_figure(summary_table().drop(columns=["images"]))


def test_dataset_summary_of_nothing_says_so() -> None:
    assert _texts(dataset_summary_figure(summary_table().iloc[0:0])) == ["no images"]
