"""Counts of the dataset by split, label and category, checked against Kaggle's own summary."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from chest_xray.metadata import clean_text

GROUPS = ["split", "label", "label_1", "label_2"]
CATEGORY = ["label", "label_1", "label_2"]


def summarise(tidy: pd.DataFrame, index: pd.DataFrame) -> pd.DataFrame:
    """Metadata rows and usable images per (split, label, label_1, label_2).

    ``metadata_rows`` counts every row of the CSV; ``images`` counts the rows
    whose file is present (the joined index).
    """
    rows = tidy.groupby(GROUPS).size().rename("metadata_rows")
    images = index.groupby(GROUPS).size().rename("images")
    summary = pd.concat([rows, images], axis=1).fillna(0).astype(int).reset_index()
    return summary.sort_values(GROUPS).reset_index(drop=True)


def compare_with_shipped(
    summary: pd.DataFrame, shipped: pd.DataFrame, label_map: Mapping[str, str]
) -> pd.DataFrame:
    """Per category: Kaggle's ``Image_Count`` beside our metadata rows and images.

    Kaggle's summary counts metadata rows over both splits, so ``metadata_rows``
    must equal ``shipped`` and, where every row has its file, so must
    ``images``.
    """
    theirs = pd.DataFrame(
        {
            "label": clean_text(shipped["Label"]).map(label_map),
            "label_1": clean_text(shipped["Label_1_Virus_category"]),
            "label_2": clean_text(shipped["Label_2_Virus_category"]),
            "shipped": shipped["Image_Count"].astype(int),
        }
    )
    ours = summary.groupby(CATEGORY)[["metadata_rows", "images"]].sum().reset_index()
    merged = theirs.merge(ours, on=CATEGORY, how="outer").fillna(0)
    return merged.astype({"shipped": int, "metadata_rows": int, "images": int})
