"""Hold out a validation split from TRAIN: stratified, seeded, patient-aware by default."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

Strategy = Literal["patient", "stratified", "random"]
MANIFEST_COLUMNS = ["image_id", "split", "label", "patient_id", "file_name", "label_1", "label_2"]


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
        folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
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
    index: pd.DataFrame, *, fraction: float, strategy: Strategy, seed: int
) -> pd.DataFrame:
    """One row per usable image with its final split: train, validation or test."""
    index = index.sort_values("image_id").reset_index(drop=True)
    manifest = index.copy()
    train = (index["split"] == "train").to_numpy()
    if train.any():
        held_out = validation_mask(
            index.loc[train, "label"],
            index.loc[train, "patient_id"],
            fraction=fraction,
            strategy=strategy,
            seed=seed,
        )
        manifest.loc[np.flatnonzero(train)[held_out], "split"] = "validation"
    check_both_classes(manifest, ("train", "validation"))
    return manifest[MANIFEST_COLUMNS]


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
