"""The demo download's plan: counts, quirks and patients, before anything is drawn."""

from __future__ import annotations

import numpy as np

from chest_xray.tools.demo_plan import Names, plan_test, plan_train


def _plans(n_train: int = 60, n_test: int = 10, seed: int = 0) -> tuple[list, list]:
    rng = np.random.default_rng(seed)
    names, pid = Names(rng), [0]
    return plan_train(rng, names, n_train, pid), plan_test(rng, names, n_test, pid)


def test_labelled_images_with_a_file_are_exactly_the_requested_counts() -> None:
    train, test = _plans(60, 10)

    assert sum(item.has_file and item.has_row for item in train) == 60
    assert sum(item.has_file and item.has_row for item in test) == 10


def test_the_quirks_are_planned_unlabelled_files_and_rows_without_a_file() -> None:
    train, test = _plans()

    assert sum(not item.has_row for item in train) == 3
    assert [item.has_file for item in train].count(False) == 2  # a NORMAL and a COVID row
    assert [item.has_file for item in test].count(False) == 1
    assert {item.mode for item in train} >= {"L", "RGB", "RGBA", "P", "I;16", "CMYK"}
    assert all(item.label_2 == "" for item in test)  # TEST has plain names only


def test_names_are_unique_and_no_patient_is_in_both_splits() -> None:
    train, test = _plans()

    names = [item.name for item in train + test]
    assert len(names) == len(set(names))
    assert not {item.patient for item in train} & {item.patient for item in test}
    per_patient = np.bincount([item.patient for item in train + test])
    assert per_patient.max() > 1  # several images per patient: a patient-aware split has groups


def test_the_same_seed_plans_the_same_download() -> None:
    assert _plans(seed=3) == _plans(seed=3)
    assert _plans(seed=3) != _plans(seed=4)
