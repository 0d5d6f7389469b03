"""The train/validation split: stratified, seeded, patient-aware, and no copy of an image on
two sides."""

from __future__ import annotations

import warnings

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
    manifest = make_manifest(index(), fraction=0.2, strategy=strategy, seed=2)[0]
    train_side = manifest[manifest["split"] != "test"]
    share = (train_side["split"] == "validation").mean()
    assert 0.15 < share < 0.25
    assert (manifest["split"] == "test").sum() == 10  # TEST is never touched


def test_patient_split_keeps_patients_whole_and_classes_balanced() -> None:
    manifest = make_manifest(index(400), fraction=0.2, strategy="patient", seed=2)[0]
    sides = manifest[manifest["split"] != "test"].groupby("patient_id")["split"].nunique()
    assert sides.max() == 1
    normal = manifest.groupby("split")["label"].apply(lambda s: (s == "NORMAL").mean())
    assert abs(normal["train"] - normal["validation"]) < 0.03


def test_same_seed_same_manifest_other_seed_other_manifest() -> None:
    first = make_manifest(index(), fraction=0.2, strategy="patient", seed=2)[0]
    again, _ = make_manifest(
        index().sample(frac=1, random_state=1), fraction=0.2, strategy="patient", seed=2
    )
    other = make_manifest(index(), fraction=0.2, strategy="patient", seed=3)[0]
    pd.testing.assert_frame_equal(first, again)
    assert not first["split"].equals(other["split"])


def test_missing_class_in_validation_is_a_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    table = index(50)
    table.loc[table["split"] == "train", "label"] = "PNEUMONIA"
    table.loc[0, "label"] = "NORMAL"  # one NORMAL image: cannot be on both sides
    with (
        warnings.catch_warnings(),
        pytest.raises(SplitError, match=r"'(train|validation)' split has no \['NORMAL'\]"),
    ):
        warnings.simplefilter("error")  # scikit-learn's own warning is not shown
        make_manifest(table, fraction=0.2, strategy="patient", seed=2)[0]
    assert "NORMAL class has only 1 image(s) to split, fewer than the 5 folds" in caplog.text


def with_copies(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Digests per image where 3 groups of images share their bytes: two TRAIN images of
    different patients, a TRAIN image and a TEST image, two TEST images."""
    digests = pd.Series(
        [f"{n:032x}" for n in range(len(table))], index=table["image_id"].to_numpy()
    )
    digests["train/p1_0"] = digests["train/p7_0"] = "a" * 32
    digests["train/p3_0"] = digests["test/t2"] = "b" * 32
    digests["test/t4"] = digests["test/t5"] = "c" * 32
    return table, digests


@pytest.mark.parametrize("strategy", ["patient", "stratified", "random"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_copies_within_train_stay_on_one_side_and_test_copies_of_train_are_dropped(
    strategy: str, seed: int
) -> None:
    table, digests = with_copies(index())
    manifest, report = make_manifest(
        table, fraction=0.5, strategy=strategy, seed=seed, digests=digests
    )
    side = manifest.set_index("image_id")["split"]
    assert side["train/p1_0"] == side["train/p7_0"]
    if strategy == "patient":  # and the two patients stay whole with them
        both = manifest[manifest["patient_id"].isin(["p1", "p7"])]
        assert both["split"].nunique() == 1
    assert "test/t2" not in side.index  # the leak is gone
    assert side["test/t4"] == side["test/t5"] == "test"  # copies within TEST stay
    actions = report.set_index("image_id")["action"]
    assert actions["test/t2"] == "dropped from test: same bytes as train/p3_0"
    assert actions["train/p1_0"].startswith("kept in")
    assert set(report["image_id"]) == {
        "train/p1_0",
        "train/p7_0",
        "train/p3_0",
        "test/t2",
        "test/t4",
        "test/t5",
    }


def test_a_test_copy_of_a_train_image_can_stop_the_run() -> None:
    table, digests = with_copies(index())
    with pytest.raises(SplitError, match=r"1 TEST image.*test/t2.*split.duplicates"):
        make_manifest(
            table, fraction=0.2, strategy="patient", seed=2, digests=digests, duplicates="stop"
        )


def test_without_copies_the_split_is_the_one_without_digests() -> None:
    table = index()
    digests = pd.Series([f"{n:032x}" for n in range(len(table))], index=table["image_id"])
    plain, _ = make_manifest(table, fraction=0.2, strategy="patient", seed=2)
    checked, report = make_manifest(
        table, fraction=0.2, strategy="patient", seed=2, digests=digests
    )
    pd.testing.assert_frame_equal(plain, checked)
    assert report.empty
