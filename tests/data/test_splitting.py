"""The train/validation split: stratified, seeded, patient-aware."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chest_xray.data.splitting import SplitError, make_manifest


def index(n_patients: int = 200, seed: int = 0) -> pd.DataFrame:
    """Patients with 1-4 images each, ~30% NORMAL, plus a small test split."""
    rng = np.random.default_rng(seed)
    rows = []
    for patient in range(n_patients):
        label = "NORMAL" if rng.random() < 0.3 else "PNEUMONIA"
        for image in range(rng.integers(1, 5)):
            rows.append((f"train/p{patient}_{image}", "train", label, f"p{patient}"))
    rows += [(f"test/t{i}", "test", ["NORMAL", "PNEUMONIA"][i % 2], f"t{i}") for i in range(10)]
    table = pd.DataFrame(rows, columns=["image_id", "split", "label", "patient_id"])
    return table.assign(file_name=table["image_id"] + ".jpeg", label_1="", label_2="")


@pytest.mark.parametrize("strategy", ["patient", "stratified", "random"])
def test_about_a_fifth_goes_to_validation(strategy: str) -> None:
    manifest = make_manifest(index(), fraction=0.2, strategy=strategy, seed=2)
    train_side = manifest[manifest["split"] != "test"]
    share = (train_side["split"] == "validation").mean()
    assert 0.15 < share < 0.25
    assert (manifest["split"] == "test").sum() == 10  # TEST is never touched


def test_patient_split_keeps_patients_whole_and_classes_balanced() -> None:
    manifest = make_manifest(index(400), fraction=0.2, strategy="patient", seed=2)
    sides = manifest[manifest["split"] != "test"].groupby("patient_id")["split"].nunique()
    assert sides.max() == 1
    normal = manifest.groupby("split")["label"].apply(lambda s: (s == "NORMAL").mean())
    assert abs(normal["train"] - normal["validation"]) < 0.03


def test_same_seed_same_manifest_other_seed_other_manifest() -> None:
    first = make_manifest(index(), fraction=0.2, strategy="patient", seed=2)
    again = make_manifest(
        index().sample(frac=1, random_state=1), fraction=0.2, strategy="patient", seed=2
    )
    other = make_manifest(index(), fraction=0.2, strategy="patient", seed=3)
    pd.testing.assert_frame_equal(first, again)
    assert not first["split"].equals(other["split"])


def test_missing_class_in_validation_is_a_clear_error() -> None:
    table = index(50)
    table.loc[table["split"] == "train", "label"] = "PNEUMONIA"
    table.loc[0, "label"] = "NORMAL"  # one NORMAL image: cannot be on both sides
    with pytest.raises(SplitError, match=r"'(train|validation)' split has no \['NORMAL'\]"):
        make_manifest(table, fraction=0.2, strategy="patient", seed=2)
