"""Validating, normalising and joining the Kaggle metadata."""

from __future__ import annotations

import pandas as pd
import pytest

from chest_xray.data.metadata import (
    REASON_DUPLICATE_ROW,
    REASON_NO_FILE,
    REASON_NO_ROW,
    REASON_OUTSIDE,
    MetadataError,
    deduplicate,
    join_files,
    normalise_metadata,
    patient_id,
)
from chest_xray.params import MetadataParams

LABELS = MetadataParams().label_map


def raw(rows: list[tuple[str, str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        rows,
        columns=[
            "X_ray_image_name",
            "Label",
            "Dataset_type",
            "Label_2_Virus_category",
            "Label_1_Virus_category",
        ],
    )


@pytest.mark.parametrize(
    ("name", "patient"),
    [
        ("person12_bacteria_45.jpeg", "person12"),
        ("person1_virus_6.jpeg", "person1"),
        ("IM-0115-0001.jpeg", "IM-0115"),
        ("IM-0011-0001-0002.jpeg", "IM-0011"),
        ("NORMAL2-IM-0381-0001.jpeg", "IM-0381"),
        ("1-s2.0-S0140673620303706-fx1_lrg.jpg", "1-s2.0-S0140673620303706-fx1_lrg"),
    ],
)
def test_patient_id_is_parsed_from_the_file_name(name: str, patient: str) -> None:
    assert patient_id(name) == patient


def test_normalise_fixes_spelling_and_splits() -> None:
    tidy = normalise_metadata(
        raw(
            [
                (" IM-1-0001.jpeg", "Normal", "TRAIN", "", ""),
                ("person1_virus_1.jpeg", "Pnemonia", "test", "COVID-19", "Virus"),
            ]
        ),
        LABELS,
    )
    assert tidy["label"].tolist() == ["NORMAL", "PNEUMONIA"]
    assert tidy["split"].tolist() == ["train", "test"]
    assert tidy["file_name"].tolist() == ["IM-1-0001.jpeg", "person1_virus_1.jpeg"]
    assert tidy["label_2"].tolist() == ["", "COVID-19"]


def test_missing_column_is_named() -> None:
    with pytest.raises(MetadataError, match=r"Chest_xray_Corona_Metadata.csv.*\['Label'\]"):
        normalise_metadata(raw([]).drop(columns="Label"), LABELS)


def test_unknown_label_is_named_with_an_example_row() -> None:
    table = raw([("a.jpeg", "Normal", "TRAIN", "", ""), ("b.jpeg", "Covid", "TRAIN", "", "")])
    with pytest.raises(MetadataError, match=r"'Label'.*\['Covid'\].*'b.jpeg'"):
        normalise_metadata(table, LABELS)


def test_unknown_split_is_named() -> None:
    with pytest.raises(MetadataError, match=r"'Dataset_type'.*VAL"):
        normalise_metadata(raw([("a.jpeg", "Normal", "VAL", "", "")]), LABELS)


def test_duplicate_rows_keep_one_and_are_reported() -> None:
    tidy = normalise_metadata(
        raw([("a.jpeg", "Normal", "TRAIN", "", "")] * 2 + [("a.jpeg", "Normal", "TEST", "", "")]),
        LABELS,
    )
    unique, dropped = deduplicate(tidy)
    assert len(unique) == 2
    assert dropped["reason"].tolist() == [REASON_DUPLICATE_ROW]


def test_duplicate_rows_with_conflicting_labels_fail() -> None:
    tidy = normalise_metadata(
        raw([("a.jpeg", "Normal", "TRAIN", "", ""), ("a.jpeg", "Pnemonia", "TRAIN", "", "")]),
        LABELS,
    )
    with pytest.raises(MetadataError, match=r"a\.jpeg.*different labels"):
        deduplicate(tidy)


def test_join_keeps_matches_and_reports_both_orphans() -> None:
    tidy = normalise_metadata(
        raw(
            [
                ("IM-0001-0001.jpeg", "Normal", "TRAIN", "", ""),
                ("person3_bacteria_9.jpeg", "Pnemonia", "TRAIN", "", "bacteria"),
                ("IM-0002-0001.jpeg", "Normal", "TEST", "", ""),  # no file
            ]
        ),
        LABELS,
    )
    files = [
        "train/IM-0001-0001.jpeg",
        "train/person3_bacteria_9.jpeg",
        "train/unlabelled.png",  # no row
        "train/.DS_Store",  # no row
        "other/readme.txt",  # outside
    ]
    index, dropped = join_files(tidy, files)
    assert index["image_id"].tolist() == ["train/IM-0001-0001", "train/person3_bacteria_9"]
    assert index["patient_id"].tolist() == ["IM-0001", "person3"]
    assert index["raw_partition"].tolist() == files[:2]
    reasons = dict(zip(dropped["file_name"], dropped["reason"], strict=True))
    assert reasons == {
        "IM-0002-0001.jpeg": REASON_NO_FILE,
        "unlabelled.png": REASON_NO_ROW,
        ".DS_Store": REASON_NO_ROW,
        "other/readme.txt": REASON_OUTSIDE,
    }


def test_same_stem_with_two_extensions_is_an_error() -> None:
    tidy = normalise_metadata(
        raw([("a.jpeg", "Normal", "TRAIN", "", ""), ("a.png", "Normal", "TRAIN", "", "")]), LABELS
    )
    with pytest.raises(MetadataError, match="same id"):
        join_files(tidy, ["train/a.jpeg", "train/a.png"])
