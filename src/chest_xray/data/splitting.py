"""Hold out a validation split from TRAIN: stratified, seeded, patient-aware by default, and
never with the same image (same bytes) on two sides.

The real dataset holds exact duplicate files under different names. A copy in
TRAIN and one in TEST is a leak that inflates the test metrics; copies within
TRAIN split between train and validation inflate validation. So copies are
grouped by the SHA-256 of their source bytes (recorded by preprocessing): a
TEST copy of a TRAIN image is dropped (or the run stops, ``split.duplicates``),
and copies within TRAIN go to the same side, with their patients.
"""

from __future__ import annotations

import logging
import warnings
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

logger = logging.getLogger(__name__)

Strategy = Literal["patient", "stratified", "random"]
DuplicateAction = Literal["drop", "stop"]
MANIFEST_COLUMNS = ["image_id", "split", "label", "patient_id", "file_name", "label_1", "label_2"]
DUPLICATE_COLUMNS = ["source_sha256", "image_id", "split", "action"]


class SplitError(ValueError):
    """The split cannot give both classes to both sides; the message says which."""


def validation_mask(
    labels: pd.Series,
    patients: pd.Series,
    *,
    fraction: float,
    strategy: Strategy,
    seed: int,
) -> np.ndarray:
    """Boolean mask of the rows that go to validation.

    ``patient`` uses scikit-learn's ``StratifiedGroupKFold`` with
    ``round(1 / fraction)`` folds and keeps the first fold, so no patient is on
    both sides and each class keeps its share (the achieved fraction is
    ``1/k`` rounded to whole patients). ``stratified`` and ``random`` use
    ``train_test_split`` with and without ``stratify``; ``random`` with
    ``seed=2`` is the write-up's split.
    """
    positions = np.arange(len(labels))
    if strategy == "patient":
        n_splits = max(2, round(1 / fraction))
        counts = labels.value_counts()
        if counts.min() < n_splits:  # said here, in the split's terms, not by scikit-learn
            logger.warning(
                "The %s class has only %d image(s) to split, fewer than the %d folds that "
                "validation_fraction %.2f means: validation may get none of it",
                counts.idxmin(),
                counts.min(),
                n_splits,
                fraction,
            )
        folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "The least populated class", UserWarning)
            _, held_out = next(folds.split(positions, labels.to_numpy(), patients.to_numpy()))
    else:
        stratify = labels.to_numpy() if strategy == "stratified" else None
        _, held_out = train_test_split(
            positions, test_size=fraction, random_state=seed, stratify=stratify
        )
    mask = np.zeros(len(labels), dtype=bool)
    mask[held_out] = True
    return mask


def make_manifest(
    index: pd.DataFrame,
    *,
    fraction: float,
    strategy: Strategy,
    seed: int,
    digests: pd.Series | None = None,
    duplicates: DuplicateAction = "drop",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per usable image with its final split (train, validation or test), and the
    report of exact duplicates (``DUPLICATE_COLUMNS``: one row per copy, what was done).

    ``digests`` maps image_id -> SHA-256 of the source bytes; without it no
    duplicate can be seen.
    """
    index = index.sort_values("image_id").reset_index(drop=True)
    sha = index["image_id"].map(digests) if digests is not None else pd.Series(dtype=str)
    sha = sha.reindex(index.index).fillna("").astype(str)
    copies = sha.ne("") & sha.duplicated(keep=False)
    leaked = copies & index["split"].eq("test") & sha.isin(sha[index["split"].eq("train")])
    if leaked.any() and duplicates == "stop":
        examples = index.loc[leaked, "image_id"].head(5).tolist()
        raise SplitError(
            f"{int(leaked.sum())} TEST image(s) have the same bytes as a TRAIN image, e.g. "
            f"{examples}: a leak. Remove them, or set split.duplicates: drop"
        )
    manifest = index.loc[~leaked].copy()
    train = (manifest["split"] == "train").to_numpy()
    if train.any():
        rows = manifest.loc[train]
        patients = _connected(rows["patient_id"], sha[rows.index].where(copies[rows.index], ""))
        held_out = validation_mask(
            rows["label"], patients, fraction=fraction, strategy=strategy, seed=seed
        )
        if strategy != "patient":  # copies follow the first of them to its side
            same = sha[rows.index].where(sha[rows.index] != "", rows["image_id"])
            held_out = pd.Series(held_out, index=rows.index).groupby(same).transform("first")
            held_out = held_out.to_numpy(dtype=bool)
        manifest.loc[rows.index[held_out], "split"] = "validation"
    check_both_classes(manifest, ("train", "validation"))
    report = _duplicate_report(index, manifest, sha, copies, leaked)
    return manifest[MANIFEST_COLUMNS].reset_index(drop=True), report


def _connected(patients: pd.Series, sha: pd.Series) -> pd.Series:
    """A group per row: rows sharing a patient or a source digest end up in one group.

    A patient linked to no copy keeps its own id as its group, so a dataset
    without copies is split exactly as by patient alone.
    """
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for patient, digest in zip(patients, sha, strict=True):
        if digest:
            parent[root(f"p:{patient}")] = root(f"d:{digest}")
    return pd.Series(
        [root(f"p:{patient}").removeprefix("p:") for patient in patients], index=patients.index
    )


def _duplicate_report(
    index: pd.DataFrame,
    manifest: pd.DataFrame,
    sha: pd.Series,
    copies: pd.Series,
    leaked: pd.Series,
) -> pd.DataFrame:
    final = manifest["split"].reindex(index.index)
    first_train = index.loc[index["split"].eq("train")].groupby(sha)["image_id"].first()
    actions = []
    for row in index.loc[copies].itertuples():
        if leaked[row.Index]:
            actions.append(f"dropped from test: same bytes as {first_train[sha[row.Index]]}")
        else:
            actions.append(f"kept in {final[row.Index]} with its copies")
    report = pd.DataFrame(
        {
            "source_sha256": sha[copies],
            "image_id": index.loc[copies, "image_id"],
            "split": index.loc[copies, "split"],
            "action": actions,
        },
        columns=DUPLICATE_COLUMNS,
    )
    return report.sort_values(["source_sha256", "image_id"]).reset_index(drop=True)


def check_both_classes(manifest: pd.DataFrame, splits: tuple[str, ...]) -> None:
    """Fail before training when a split lacks a class (metrics would be meaningless)."""
    classes = sorted(manifest["label"].unique())
    for split in splits:
        present = set(manifest.loc[manifest["split"] == split, "label"])
        absent = [label for label in classes if label not in present]
        if len(classes) < 2 or absent:
            counts = manifest.loc[manifest["split"] == split, "label"].value_counts().to_dict()
            raise SplitError(
                f"The '{split}' split has no {absent or 'second class'} image "
                f"(its counts: {counts or 'empty'}); add data or change the split parameters"
            )


def require_test_split(manifest: pd.DataFrame) -> None:
    """Refuse a manifest without test images when the run is going to evaluate: a dataset
    with no TEST images (the shared copy of the Kaggle download) would otherwise train for
    minutes and only then fail in ``evaluate``. Called by ``RequireTestSplitHooks``, which knows
    whether the run evaluates; the split itself does not."""
    if not manifest["split"].eq("test").any():
        raise ValueError(
            "The test split is empty (no TEST image of raw_root has a file), so the "
            "evaluation would have nothing to score: stopped before training. Point raw_root "
            "at a dataset with test images, or train without evaluating: "
            "kedro run --pipelines=data_processing,training"
        )
