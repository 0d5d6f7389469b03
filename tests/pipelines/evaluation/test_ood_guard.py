"""fit_ood_guard on a small in-memory partition: streams the splits it is told to."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from chest_xray.params import EvaluationParams
from chest_xray.pipelines.evaluation.ood_guard import fit_ood_guard
from tests.inference.new_images import encoded
from tests.inference.ood_images import chest_like


def _data(n_train: int, n_validation: int) -> tuple[dict, pd.DataFrame]:
    rng = np.random.default_rng(0)
    rows = [("train", f"train/{i:03d}") for i in range(n_train)]
    rows += [("validation", f"val/{i:03d}") for i in range(n_validation)]
    rows += [("test", "test/000")]
    pngs = {key: encoded(chest_like(rng), "PNG") for _, key in rows}
    loaders = {key: (lambda data=data: data) for key, data in pngs.items()}
    manifest = pd.DataFrame({"split": [s for s, _ in rows], "image_id": [k for _, k in rows]})
    manifest["label"] = "NORMAL"
    return loaders, manifest


def test_fits_on_train_and_thresholds_on_validation() -> None:
    loaders, manifest = _data(60, 25)
    guard = fit_ood_guard(loaders, manifest, EvaluationParams())
    assert guard is not None
    assert (guard.n_fit, guard.n_threshold, guard.threshold_source) == (60, 25, "validation")
    blank = np.zeros((60, 52), np.uint8)
    assert guard.flags(guard.scores([blank])).all()


def test_samples_at_most_max_images_per_split() -> None:
    loaders, manifest = _data(50, 30)
    params = EvaluationParams.model_validate({"ood": {"max_images": 20}})
    guard = fit_ood_guard(loaders, manifest, params)
    assert guard is not None and (guard.n_fit, guard.n_threshold) == (20, 20)


def test_disabled_packages_no_guard(caplog: pytest.LogCaptureFixture) -> None:
    loaders, manifest = _data(5, 0)
    params = EvaluationParams.model_validate({"ood": {"enabled": False}})
    with caplog.at_level(logging.INFO):
        assert fit_ood_guard(loaders, manifest, params) is None
    assert "without an OOD guard" in caplog.text


def test_a_missing_image_is_named() -> None:
    loaders, manifest = _data(5, 0)
    del loaders["train/003"]
    with pytest.raises(KeyError, match="train/003"):
        fit_ood_guard(loaders, manifest, EvaluationParams())
