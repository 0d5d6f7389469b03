"""Patient-grouped, stratified k-fold cross-validation over TRAIN.

One number from one split cannot say whether one configuration beats another;
k folds give k estimates on disjoint held-out sets. The folds follow the
same rules as the train/validation split (``splitting``): no patient, and no
pair of exact copies (same source bytes), on two sides; each class keeps its
share. The official TEST images take no part.

Inside fold ``i`` the held-out fold is the fold's ``test`` split (what it is
scored on); the other folds are split again into ``train`` and ``validation``
(the same way as the main split) so that Keras' monitoring and the threshold
chosen on validation never see the held-out images.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from chest_xray.data.splitting import (
    MANIFEST_COLUMNS,
    SplitError,
    _connected,
    check_both_classes,
    validation_mask,
)

FOLD_COLUMNS = ["image_id", "fold", "label", "patient_id", "group"]
TRAIN_SPLITS = ("train", "validation")  # the main manifest's TRAIN images


def fold_name(fold: int) -> str:
    """The namespace of fold ``fold`` (1-based): ``fold_1`` ... ``fold_k``."""
    return f"fold_{fold}"


def assign_folds(
    manifest: pd.DataFrame,
    *,
    folds: int,
    seed: int,
    digests: pd.Series | None = None,
) -> pd.DataFrame:
    """``FOLD_COLUMNS``: every TRAIN image of ``manifest`` with its fold (1..``folds``).

    scikit-learn's ``StratifiedGroupKFold`` (shuffled, seeded) over groups that join
    rows sharing a patient or, given ``digests`` (image_id -> SHA-256 of the source),
    the same bytes. Raises ``SplitError`` when a fold would lack a class or there are
    fewer groups than folds, naming the counts.
    """
    if folds < 2:
        raise SplitError(f"cross_validation.folds must be at least 2, got {folds}")
    rows = manifest.loc[manifest["split"].isin(TRAIN_SPLITS)].sort_values("image_id")
    rows = rows.reset_index(drop=True)
    sha = rows["image_id"].map(digests) if digests is not None else pd.Series("", index=rows.index)
    sha = sha.fillna("").astype(str)
    copies = sha.ne("") & sha.duplicated(keep=False)
    groups = _connected(rows["patient_id"].astype(str), sha.where(copies, ""))
    if groups.nunique() < folds:
        raise SplitError(
            f"{groups.nunique()} patient group(s) in TRAIN cannot fill "
            f"cross_validation.folds={folds} folds"
        )
    fold = np.zeros(len(rows), dtype=int)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    positions = np.arange(len(rows))
    for number, (_, held_out) in enumerate(
        splitter.split(positions, rows["label"].to_numpy(), groups.to_numpy()), start=1
    ):
        fold[held_out] = number
    table = pd.DataFrame(
        {
            "image_id": rows["image_id"],
            "fold": fold,
            "label": rows["label"],
            "patient_id": rows["patient_id"],
            "group": groups,  # the patient, or the patients joined by an exact copy
        },
        columns=FOLD_COLUMNS,
    )
    classes = sorted(table["label"].unique())
    for number in range(1, folds + 1):
        present = set(table.loc[table["fold"] == number, "label"])
        if missing := [label for label in classes if label not in present]:
            raise SplitError(
                f"Fold {number} of {folds} has no {missing} image: too few patients of that "
                "class for this many folds; lower cross_validation.folds"
            )
    return table


def fold_manifest(
    manifest: pd.DataFrame,
    folds: pd.DataFrame,
    fold: int,
    *,
    validation_fraction: float,
    seed: int,
) -> pd.DataFrame:
    """The split manifest of fold ``fold``: its held-out images as ``test``, the others
    split into ``train`` / ``validation`` by patient (``splitting.validation_mask``).

    The inner split uses the fold table's ``group`` (patients joined by exact
    copies), so no patient and no pair of copies is on both sides of it either.
    """
    if fold not in set(folds["fold"]):
        raise SplitError(
            f"There is no fold {fold}: the fold table has {sorted(set(folds['fold']))}"
        )
    rows = manifest.loc[manifest["image_id"].isin(folds["image_id"])].copy()
    rows = rows.sort_values("image_id").reset_index(drop=True)
    by_id = folds.set_index("image_id")
    number = rows["image_id"].map(by_id["fold"])
    held_out = number.eq(fold).to_numpy()
    rows["split"] = np.where(held_out, "test", "train")
    rest = rows.loc[~held_out]
    inner = validation_mask(
        rest["label"],
        rest["image_id"].map(by_id["group"]).astype(str),
        fraction=validation_fraction,
        strategy="patient",
        seed=seed,
    )
    rows.loc[rest.index[inner], "split"] = "validation"
    check_both_classes(rows, ("train", "validation", "test"))
    return rows[MANIFEST_COLUMNS].reset_index(drop=True)
