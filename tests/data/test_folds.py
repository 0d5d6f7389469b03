"""Cross-validation folds: every TRAIN image in exactly one held-out fold, no patient (and no
pair of exact copies) in two folds, both classes in every fold, reproducible with the seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chest_xray.data.folds import assign_folds, fold_manifest
from chest_xray.data.splitting import MANIFEST_COLUMNS, SplitError


def manifest(n_patients: int = 60, seed: int = 0) -> pd.DataFrame:
    """A main split manifest: patients with 1-4 images each, a quarter NORMAL, plus TEST rows."""
    rng = np.random.default_rng(seed)
    rows = []
    for patient in range(n_patients):
        label = "NORMAL" if patient % 4 == 0 else "PNEUMONIA"
        for image in range(int(rng.integers(1, 5))):
            split = "validation" if patient % 5 == 0 else "train"
            rows.append((f"p{patient:03d}_{image}", split, label, f"p{patient:03d}"))
    rows += [(f"t{i:03d}", "test", ["NORMAL", "PNEUMONIA"][i % 2], f"t{i:03d}") for i in range(20)]
    frame = pd.DataFrame(rows, columns=["image_id", "split", "label", "patient_id"])
    frame["file_name"] = frame["image_id"] + ".jpeg"
    frame["label_1"] = ""
    frame["label_2"] = ""
    return frame[MANIFEST_COLUMNS]


def test_every_train_image_is_in_exactly_one_fold_and_no_patient_in_two() -> None:
    main = manifest()
    folds = assign_folds(main, folds=5, seed=0)

    train = main[main["split"].isin(["train", "validation"])]
    assert sorted(folds["image_id"]) == sorted(train["image_id"])  # no TEST image, none twice
    assert folds["image_id"].is_unique
    assert set(folds["fold"]) == {1, 2, 3, 4, 5}
    assert folds.groupby("patient_id")["fold"].nunique().max() == 1
    for _, fold in folds.groupby("fold"):
        assert set(fold["label"]) == {"NORMAL", "PNEUMONIA"}
        share = (fold["label"] == "NORMAL").mean()
        assert share == pytest.approx((train["label"] == "NORMAL").mean(), abs=0.12)


def test_the_seed_decides_the_folds() -> None:
    main = manifest()
    first = assign_folds(main, folds=4, seed=3)
    assert first.equals(assign_folds(main, folds=4, seed=3))
    assert not first["fold"].equals(assign_folds(main, folds=4, seed=4)["fold"])


def test_exact_copies_of_two_patients_share_a_fold() -> None:
    main = manifest()
    a, b = "p001_0", "p002_0"
    digests = pd.Series({a: "same-bytes", b: "same-bytes"})
    for seed in range(5):
        folds = assign_folds(main, folds=5, seed=seed, digests=digests).set_index("image_id")
        patients = folds.loc[folds["patient_id"].isin(["p001", "p002"]), "fold"]
        assert patients.nunique() == 1


def test_a_fold_manifest_holds_out_its_fold_and_splits_the_rest_by_patient() -> None:
    main = manifest()
    folds = assign_folds(main, folds=3, seed=0)
    fold = fold_manifest(main, folds, 2, validation_fraction=0.25, seed=1)

    assert list(fold.columns) == MANIFEST_COLUMNS
    held = set(folds.loc[folds["fold"] == 2, "image_id"])
    assert set(fold.loc[fold["split"] == "test", "image_id"]) == held
    assert set(fold["split"]) == {"train", "validation", "test"}
    assert len(fold) == len(folds)  # the official TEST rows take no part
    sides = fold[fold["split"] != "test"].groupby("patient_id")["split"].nunique()
    assert sides.max() == 1
    validation = (fold["split"] == "validation").sum() / (fold["split"] != "test").sum()
    assert validation == pytest.approx(0.25, abs=0.1)


def test_too_many_folds_for_the_patients_is_an_error_naming_the_parameter() -> None:
    with pytest.raises(SplitError, match=r"5 patient group\(s\).*cross_validation\.folds=7"):
        assign_folds(manifest(n_patients=5), folds=7, seed=0)
    one_normal = manifest(n_patients=4)  # patient 0 is the only NORMAL one
    with pytest.raises(SplitError, match=r"no \['NORMAL'\].*lower cross_validation\.folds"):
        assign_folds(one_normal, folds=2, seed=0)


def test_a_fold_that_does_not_exist_is_an_error() -> None:
    main = manifest()
    folds = assign_folds(main, folds=3, seed=0)
    with pytest.raises(SplitError, match="no fold 4"):
        fold_manifest(main, folds, 4, validation_fraction=0.2, seed=0)
