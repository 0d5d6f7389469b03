"""The Kaggle metadata CSV: validate it, normalise it, join it to the files present.

No image is opened here: this runs first and fails fast on a bad CSV, before
any expensive work.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath
from typing import Literal

import pandas as pd

METADATA_FILE = "Chest_xray_Corona_Metadata.csv"
REQUIRED_COLUMNS = (
    "X_ray_image_name",
    "Label",
    "Dataset_type",
    "Label_1_Virus_category",
    "Label_2_Virus_category",
)
SPLIT_FOLDERS = {"TRAIN": "train", "TEST": "test"}

INDEX_COLUMNS = [
    "image_id",
    "split",
    "label",
    "label_1",
    "label_2",
    "patient_id",
    "file_name",
    "raw_partition",
]
DROPPED_COLUMNS = ["split", "file_name", "reason"]

REASON_NO_ROW = "image file has no metadata row (unlabelled)"
REASON_NO_FILE = "metadata row has no image file"
REASON_DUPLICATE_ROW = "duplicate metadata row (same name, split and labels): kept the first"
REASON_OUTSIDE = "file outside the train/ and test/ folders"

Task = Literal["binary", "multiclass"]
# The multiclass task's classes, in output order; COVID-19 is an optional fourth.
MULTICLASS_CLASSES = ("NORMAL", "BACTERIA", "VIRUS")
COVID_CLASS = "COVID-19"
# ``Label_1_Virus_category`` (lower case) of a PNEUMONIA row -> its multiclass class.
_PNEUMONIA_KINDS = {"bacteria": "BACTERIA", "virus": "VIRUS"}
REASON_NO_CLASS = "no class in the multiclass task"

_PERSON = re.compile(r"^(person\d+)_", re.IGNORECASE)
_IM_NUMBER = re.compile(r"(?:^|-)(IM-\d+)-\d+", re.IGNORECASE)


class MetadataError(ValueError):
    """The metadata CSV cannot be used as it is; the message says where and why."""


def patient_id(file_name: str) -> str:
    """The patient an image belongs to, parsed from its Kaggle file name.

    ``person12_bacteria_45.jpeg`` -> ``person12``; ``IM-0115-0001.jpeg`` and
    ``NORMAL2-IM-0381-0001.jpeg`` -> ``IM-0115`` / ``IM-0381``; any other name
    (the COVID-19 additions) is a patient of its own, its stem.
    """
    stem = PurePosixPath(file_name).stem
    if match := _PERSON.match(stem):
        return match.group(1).lower()
    if match := _IM_NUMBER.search(stem):
        return match.group(1).upper()
    return stem


def normalise_metadata(metadata: pd.DataFrame, label_map: Mapping[str, str]) -> pd.DataFrame:
    """Check the columns and values of the raw CSV; return tidy rows.

    Output columns: ``file_name, split, label, label_1, label_2`` with labels
    spelled ``NORMAL``/``PNEUMONIA`` and splits ``train``/``test``. Raises
    ``MetadataError`` naming the missing column, or the unknown value and an
    example row, so nothing downstream runs on a misread CSV.
    """
    missing = [column for column in REQUIRED_COLUMNS if column not in metadata.columns]
    if missing:
        raise MetadataError(
            f"{METADATA_FILE} is missing required column(s) {missing}; "
            f"found {list(map(str, metadata.columns))}"
        )
    tidy = pd.DataFrame(
        {
            "file_name": clean_text(metadata["X_ray_image_name"]).map(nfc),
            "split": clean_text(metadata["Dataset_type"]).str.upper(),
            "raw_label": clean_text(metadata["Label"]),
            "label_1": clean_text(metadata["Label_1_Virus_category"]),
            "label_2": clean_text(metadata["Label_2_Virus_category"]),
        }
    )
    _reject_unknown(tidy, "X_ray_image_name", tidy["file_name"] == "", "an empty image name")
    _reject_unknown(tidy, "Label", ~tidy["raw_label"].isin(label_map.keys()), "unknown label")
    _reject_unknown(tidy, "Dataset_type", ~tidy["split"].isin(SPLIT_FOLDERS.keys()), "unknown")
    tidy["label"] = tidy["raw_label"].map(label_map)
    tidy["split"] = tidy["split"].map(SPLIT_FOLDERS)
    return tidy.drop(columns="raw_label").reset_index(drop=True)


def nfc(name: str) -> str:
    """``name`` in Unicode NFC: "é" as one code point, however the file system stored it."""
    return unicodedata.normalize("NFC", name)


def clean_text(column: pd.Series) -> pd.Series:
    """Cells as stripped strings, empty ones as "" (never NaN)."""
    return column.fillna("").astype(str).str.strip()


def _reject_unknown(tidy: pd.DataFrame, column: str, bad: pd.Series, what: str) -> None:
    if not bad.any():
        return
    source = {"Label": "raw_label", "Dataset_type": "split", "X_ray_image_name": "file_name"}
    values = sorted(set(tidy.loc[bad, source[column]]))
    example = tidy.loc[bad].iloc[0]
    raise MetadataError(
        f"{METADATA_FILE}: column '{column}' has {what} value(s) {values[:10]} in "
        f"{int(bad.sum())} row(s), e.g. the row for image '{example['file_name']}'"
    )


def deduplicate(tidy: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply the duplicate-name rule; return (unique rows, dropped duplicates).

    Rule: a name listed twice in the same split with identical labels is one
    image (the later rows are reported as dropped). The same name with
    different labels is an error: no silent choice of a label.
    """
    keys = ["split", "file_name"]
    duplicated = tidy.duplicated(keys, keep=False)
    if not duplicated.any():
        return tidy, pd.DataFrame(columns=DROPPED_COLUMNS)
    conflicting = (
        tidy[duplicated]
        .groupby(keys)[["label", "label_1", "label_2"]]
        .nunique()
        .max(axis=1)
        .loc[lambda counts: counts > 1]
    )
    if len(conflicting):
        split, name = conflicting.index[0]
        raise MetadataError(
            f"{METADATA_FILE}: image '{name}' ({split}) is listed {len(conflicting)} "
            "time(s) with different labels; fix the CSV (which label is right?)"
        )
    extra = tidy.duplicated(keys, keep="first")
    dropped = tidy.loc[extra, ["split", "file_name"]].assign(reason=REASON_DUPLICATE_ROW)
    return tidy.loc[~extra].reset_index(drop=True), dropped


def parse_partition(partition: str) -> tuple[str | None, str]:
    """``train/IM-1.jpeg`` -> (``train``, ``IM-1.jpeg``); other folders -> (None, path)."""
    parts = PurePosixPath(partition).parts
    if len(parts) == 2 and parts[0] in SPLIT_FOLDERS.values():
        return parts[0], parts[1]
    return None, partition


def join_files(tidy: pd.DataFrame, partitions: Iterable[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Inner-join normalised rows to the files present; report both kinds of orphan.

    Returns (index, dropped): the index has one row per image that has both a
    file and a row (``INDEX_COLUMNS``); ``dropped`` lists every file without a
    row and every row without a file, with the reason. Names are compared in
    Unicode NFC (macOS stores NFD on disk, a CSV usually holds NFC);
    ``raw_partition`` keeps the name on disk, to read the file.
    """
    files = pd.DataFrame(
        [(*parse_partition(nfc(p)), p) for p in partitions],
        columns=["split", "file_name", "raw_partition"],
    )
    outside = files["split"].isna()
    dropped = [files.loc[outside, ["split", "file_name"]].assign(reason=REASON_OUTSIDE)]
    files = files.loc[~outside]

    merged = tidy.merge(files, on=["split", "file_name"], how="outer", indicator=True)
    no_file = merged["_merge"] == "left_only"
    no_row = merged["_merge"] == "right_only"
    dropped.append(merged.loc[no_file, ["split", "file_name"]].assign(reason=REASON_NO_FILE))
    dropped.append(merged.loc[no_row, ["split", "file_name"]].assign(reason=REASON_NO_ROW))

    index = merged.loc[merged["_merge"] == "both"].copy()
    index["image_id"] = index["split"] + "/" + index["file_name"].map(_stem)
    clash = index["image_id"].duplicated(keep=False)
    if clash.any():
        names = sorted(index.loc[clash, "raw_partition"])
        raise MetadataError(
            f"Two image files map to the same id (same name, other extension): {names[:6]}"
        )
    index["patient_id"] = index["file_name"].map(patient_id)
    index = index[INDEX_COLUMNS].sort_values("image_id").reset_index(drop=True)
    report = pd.concat([d for d in dropped if len(d)] or [dropped[0]], ignore_index=True)
    return index, report[DROPPED_COLUMNS].sort_values(["reason", "split", "file_name"])


def _stem(file_name: str) -> str:
    return PurePosixPath(file_name).stem


# ------------------------------------------------------------------------ the task


def task_classes(task: Task, covid_class: bool = False) -> tuple[str, ...]:
    """The multiclass task's class names in output order (binary classes are a parameter)."""
    if task != "multiclass":
        raise ValueError(f"task_classes is for the multiclass task, got {task!r}")
    return (*MULTICLASS_CLASSES, COVID_CLASS) if covid_class else MULTICLASS_CLASSES


def assign_task_labels(
    index: pd.DataFrame, task: Task, covid_class: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``label`` as the task's class; return (rows that have one, dropped rows with the reason).

    ``binary`` leaves the index as it is (NORMAL / PNEUMONIA). ``multiclass`` keeps
    NORMAL and splits PNEUMONIA by ``Label_1_Virus_category``: ``bacteria`` ->
    BACTERIA, ``Virus`` -> VIRUS; with ``covid_class`` a ``Label_2_Virus_category``
    of ``COVID-19`` -> COVID-19 (otherwise COVID-19 images are VIRUS, as their
    ``Label_1`` says). A PNEUMONIA row of any other category (``Stress-Smoking``,
    none) has no class: it is returned in ``dropped`` (``DROPPED_COLUMNS``), naming it.
    """
    if task == "binary":
        if covid_class:
            raise ValueError("covid_class needs the multiclass task")
        return index, pd.DataFrame(columns=DROPPED_COLUMNS)
    if task != "multiclass":
        raise ValueError(f"unknown task {task!r}: expected 'binary' or 'multiclass'")
    kind = index["label_1"].fillna("").astype(str).str.strip().str.lower()
    label = kind.map(_PNEUMONIA_KINDS)
    if covid_class:
        covid = index["label_2"].fillna("").astype(str).str.strip().str.upper() == COVID_CLASS
        label = label.mask(covid, COVID_CLASS)
    label = label.mask(index["label"] == "NORMAL", "NORMAL")
    unassigned = label.isna()
    dropped = index.loc[unassigned, ["split", "file_name"]].assign(
        reason=[
            f"{REASON_NO_CLASS}: Label_1_Virus_category {value!r}"
            for value in index.loc[unassigned, "label_1"].fillna("")
        ]
    )
    kept = index.loc[~unassigned].assign(label=label[~unassigned]).reset_index(drop=True)
    return kept, dropped[DROPPED_COLUMNS].reset_index(drop=True)
