"""A package with an out-of-distribution guard, used the three ways: batch (the pipeline's
code), ``chest-xray predict`` and the MLflow pyfunc model; and one without (older packages)."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from chest_xray.inference import cli
from chest_xray.inference.batch import predict_files
from chest_xray.inference.classifier import Classifier
from chest_xray.inference.ood import fit_guard
from chest_xray.inference.packaging import ServableModel, load_classifier, save_servable_model
from chest_xray.inference.pyfunc_model import OOD_ENV
from tests.inference.conftest import SIZE, tiny_model, tiny_settings
from tests.inference.new_images import encoded
from tests.inference.ood_images import chest_like


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    guard = fit_guard(
        (chest_like(rng, SIZE) for _ in range(120)), [chest_like(rng, SIZE) for _ in range(40)]
    )
    path = tmp_path_factory.mktemp("guarded") / "servable_model"
    save_servable_model(ServableModel(tiny_model(), tiny_settings(), guard), path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two chest-like films, a blank image and a noise image, as PNG files."""
    rng = np.random.default_rng(7)
    root = tmp_path_factory.mktemp("ood_images")
    pictures = {
        "film1.png": chest_like(rng, SIZE),
        "film2.png": chest_like(rng, SIZE),
        "blank.png": np.zeros(SIZE, np.uint8),
        "noise.png": rng.integers(0, 256, SIZE).astype(np.uint8),
    }
    for name, pixels in pictures.items():
        (root / name).write_bytes(encoded(pixels, "PNG"))
    return root


def _predict(classifier: Classifier, images: Path) -> pd.DataFrame:
    files = {path.name: path.read_bytes for path in sorted(images.iterdir())}
    return predict_files(files, classifier, workers=1).predictions.set_index("file")


def test_the_guard_travels_in_the_package(guarded: Path) -> None:
    assert (guarded / "artifacts" / "ood_guard.npz").is_file()
    classifier = load_classifier(str(guarded))
    assert classifier.ood_guard is not None and classifier.ood_policy == "flag"


def test_flagged_images_get_no_label_by_default(guarded: Path, images: Path) -> None:
    table = _predict(load_classifier(str(guarded)), images)
    assert table.loc[["blank.png", "noise.png"], "ood_flag"].all()
    assert not table.loc[["film1.png", "film2.png"], "ood_flag"].any()
    assert (table.loc[["blank.png", "noise.png"], "label"] == "").all()
    assert table.loc[["film1.png", "film2.png"], "label"].isin(["NORMAL", "PNEUMONIA"]).all()
    assert table.loc["blank.png", "ood_reason"].startswith("out of distribution: score")
    assert table.loc["film1.png", "ood_reason"] == ""
    assert (table["ood_score"] > 0).all()


def test_a_policy_forces_a_label_or_turns_the_guard_off(guarded: Path, images: Path) -> None:
    classifier = load_classifier(str(guarded))
    classifier.ood_policy = "label"
    labelled = _predict(classifier, images)
    assert labelled.loc["blank.png", "ood_flag"]
    assert labelled["label"].isin(["NORMAL", "PNEUMONIA"]).all()
    classifier.ood_policy = "off"
    unchecked = _predict(classifier, images)
    assert unchecked["ood_score"].isna().all() and not unchecked["ood_flag"].any()


def test_a_package_without_a_guard_still_loads(
    package: Path, images: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="chest_xray.inference.pyfunc_model"):
        classifier = load_classifier(str(package))  # the shared package: made without a guard
    assert classifier.ood_guard is None
    assert "carries no out-of-distribution guard" in caplog.text
    table = _predict(classifier, images)
    assert table["ood_score"].isna().all() and not table["ood_flag"].any()
    assert table["label"].isin(["NORMAL", "PNEUMONIA"]).all()


def test_the_cli_flags_and_counts(
    guarded: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "predictions.csv"
    assert cli.main([str(images), "--model", str(guarded), "--out", str(out)]) == cli.EXIT_OK
    table = pd.read_csv(out, keep_default_na=False).set_index("file")
    flagged = {Path(name).name for name in table.index[table["ood_flag"].astype(str) == "True"]}
    assert flagged == {"blank.png", "noise.png"}
    assert set(table.loc[table["ood_flag"].astype(str) == "True", "label"]) == {""}
    assert "2 flagged out of distribution (left unlabelled)" in capsys.readouterr().err
    forced = tmp_path / "forced.csv"
    args = [str(images), "--model", str(guarded), "--out", str(forced), "--ood=label"]
    assert cli.main(args) == cli.EXIT_OK
    assert pd.read_csv(forced)["label"].isin(["NORMAL", "PNEUMONIA"]).all()


def test_the_served_model_answers_score_and_flag(
    guarded: Path, images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ["film1.png", "blank.png", "noise.png"]
    request = pd.DataFrame(
        {"image": [base64.b64encode((images / n).read_bytes()).decode() for n in names]}
    )
    answer = mlflow.pyfunc.load_model(str(guarded)).predict(request)
    assert answer["ood_flag"].tolist() == [False, True, True]
    assert answer["label"].iloc[1:].tolist() == ["", ""]
    assert answer["ood_reason"].iloc[1].startswith("out of distribution")
    monkeypatch.setenv(OOD_ENV, "label")
    forced = mlflow.pyfunc.load_model(str(guarded)).predict(request)
    assert forced["label"].isin(["NORMAL", "PNEUMONIA"]).all()
    monkeypatch.setenv(OOD_ENV, "off")
    unchecked = mlflow.pyfunc.load_model(str(guarded)).predict(request)
    assert unchecked["ood_score"].tolist() == [None, None, None]  # JSON null, not NaN
    assert not unchecked["ood_flag"].any()
    monkeypatch.setenv(OOD_ENV, "sometimes")
    with pytest.raises(ValueError, match="CHEST_XRAY_OOD must be flag, label or off"):
        mlflow.pyfunc.load_model(str(guarded))


def test_inference_ood_off_survives_yaml() -> None:
    """YAML (the parameters file, ``--params``) reads a bare ``off`` as false."""
    from chest_xray.params import InferenceParams

    assert InferenceParams.model_validate({"ood": False}).ood == "off"
    assert InferenceParams.model_validate({"ood": "label"}).ood == "label"
    with pytest.raises(ValueError, match="ood"):
        InferenceParams.model_validate({"ood": True})
