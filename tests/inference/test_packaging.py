"""The package carries its settings: saved, loaded back, refused when they are missing."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from PIL import Image

from chest_xray.inference.classifier import Classifier, ImageTooLargeError
from chest_xray.inference.packaging import ServableModel, load_classifier, save_servable_model
from chest_xray.inference.pyfunc_model import KERAS_ARTIFACT, ChestXrayModel
from chest_xray.inference.settings import (
    InferenceSettings,
    InferenceSettingsError,
    settings_from_evaluation,
)
from chest_xray.params import EvaluationParams, PreprocessingParams
from tests.inference.conftest import SIZE, tiny_model, tiny_settings


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_package_loads_back_with_its_settings_and_the_same_network(
    package: Path, classifier: Classifier
) -> None:
    assert (package / "MLmodel").exists()
    assert classifier.settings == tiny_settings()
    assert classifier.source == str(package)
    images = np.random.default_rng(0).integers(0, 256, (3, *SIZE, 1), dtype=np.uint8)
    again = tiny_model()  # same seed: same weights
    expected = np.asarray(again.predict(images, verbose=0)).reshape(-1)
    np.testing.assert_allclose(classifier.probabilities(images), expected, atol=1e-6)
    # The project's code travels with it, for a server with another chest_xray installed.
    assert (package / "code" / "chest_xray" / "inference" / "pyfunc_model.py").exists()
    # The network in Keras' native format, not the legacy HDF5 file.
    assert [p.name for p in (package / "artifacts").iterdir()] == ["model.keras"]
    # Logged from code (MLflow's models-from-code), not as a pickled object.
    flavor = yaml.safe_load((package / "MLmodel").read_text())["flavors"]["python_function"]
    assert Path(flavor["model_code_path"]).name == "served_model.py"
    assert (package / "served_model.py").exists()
    assert not list(package.glob("*.pkl"))


def test_saving_warns_neither_of_pickling_nor_of_hdf5(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """MLflow warns when it cloudpickles a python_model, Keras when it writes HDF5."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        save_servable_model(ServableModel(tiny_model(), tiny_settings()), tmp_path / "pkg")
    said = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    assert not [m for m in said if "CloudPickle" in m or "HDF5" in m], said


def test_a_package_of_an_earlier_version_with_an_h5_network_still_loads(tmp_path: Path) -> None:
    """Packages written before the switch to .keras hold ``artifacts/model.h5``."""
    import keras

    model = tiny_model()
    keras.saving.save_model(model, tmp_path / "model.h5", include_optimizer=False)
    context = SimpleNamespace(
        model_config=tiny_settings().to_config(),
        artifacts={KERAS_ARTIFACT: str(tmp_path / "model.h5")},
    )
    served = ChestXrayModel()
    served.load_context(context)
    images = np.random.default_rng(5).integers(0, 256, (2, *SIZE, 1), dtype=np.uint8)
    expected = np.asarray(model.predict(images, verbose=0)).reshape(-1)
    np.testing.assert_allclose(served.classifier.probabilities(images), expected, atol=1e-6)


def test_pixels_are_the_training_preprocessing(classifier: Classifier) -> None:
    big = np.random.default_rng(1).integers(0, 256, (200, 160), dtype=np.uint8)
    pixels = classifier.pixels(png(big), "x.png")
    assert pixels.shape == (*SIZE, 1) and pixels.dtype == np.uint8
    from chest_xray.data.imaging import preprocess

    made = preprocess(png(big), "x.png", classifier.settings.output_settings)
    with Image.open(io.BytesIO(made.png)) as image:
        np.testing.assert_array_equal(pixels[..., 0], np.asarray(image))


def test_labels_follow_the_packaged_threshold(package: Path) -> None:
    classifier = load_classifier(str(package))
    classifier.settings = tiny_settings(threshold=0.7)
    assert classifier.labels([0.69, 0.7, 0.95]) == ["NORMAL", "PNEUMONIA", "PNEUMONIA"]


def test_a_file_over_the_limit_is_refused_before_decoding(package: Path) -> None:
    classifier = load_classifier(str(package))
    classifier.settings = tiny_settings(max_image_bytes=100)
    with pytest.raises(ImageTooLargeError, match="too large"):
        classifier.pixels(b"\x89PNG" + bytes(200), "big.png")


def test_a_prior_shift_moves_probabilities_not_their_order(classifier: Classifier) -> None:
    images = np.random.default_rng(2).integers(0, 256, (5, *SIZE, 1), dtype=np.uint8)
    plain = classifier.probabilities(images)
    shifted = Classifier(
        classifier.model, tiny_settings(prior_shift=(0.75, 0.5)), "x"
    ).probabilities(images)
    assert np.all(shifted < plain)  # fewer positives at the target prevalence
    np.testing.assert_array_equal(np.argsort(shifted), np.argsort(plain))


def test_a_model_without_settings_is_refused_naming_it(tmp_path: Path) -> None:
    import mlflow.keras

    mlflow.keras.save_model(tiny_model(), str(tmp_path / "plain"))
    with pytest.raises(InferenceSettingsError, match="not a chest-xray servable model"):
        load_classifier(str(tmp_path / "plain"), trust=True)  # not made here: trusted by hand
    with pytest.raises(InferenceSettingsError, match="carries no inference settings"):
        InferenceSettings.from_config({}, "runs:/abc/model")
    with pytest.raises(InferenceSettingsError, match="cannot be read"):
        InferenceSettings.from_config({"classes": ["a", "b"]}, "runs:/abc/model")


def test_settings_come_from_preprocessing_and_the_evaluation_report() -> None:
    report = {
        "test": {"at_validation_threshold": {"threshold": 0.71, "strategy": "youden"}},
        "validation": {"auc": 0.97},
        "prior_shift": {"from": 0.74, "to": 0.625},
    }
    preprocessing = PreprocessingParams(image_size=(150, 150), resize_mode="pad")
    settings = settings_from_evaluation(report, preprocessing, EvaluationParams())
    assert settings.image_size == (150, 150) and settings.resize_mode == "pad"
    assert settings.threshold == 0.71 and settings.threshold_source == "youden on validation"
    assert settings.prior_shift == (0.74, 0.625) and settings.validation_auc == 0.97
    fixed = settings_from_evaluation(
        report, preprocessing, EvaluationParams(model_threshold="fixed")
    )
    assert (fixed.threshold, fixed.threshold_source) == (0.5, "evaluation.threshold")
    report["test"]["at_validation_threshold"] = None  # validation_threshold: none
    fallback = settings_from_evaluation(report, preprocessing, EvaluationParams())
    assert fallback.threshold == 0.5 and "none chosen" in fallback.threshold_source


def test_saving_into_a_used_folder_fails_without_touching_it(tmp_path: Path) -> None:
    target = tmp_path / "pkg"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(Exception, match="already exists"):
        save_servable_model(ServableModel(tiny_model(), tiny_settings()), target)
    assert (target / "keep.txt").read_text() == "mine"


def test_tta_and_contrast_travel_with_the_model(classifier: Classifier) -> None:
    report = {"test": {"at_validation_threshold": None}, "validation": {"auc": 0.9}}
    preprocessing = PreprocessingParams(image_size=(40, 48), contrast="clahe")
    settings = settings_from_evaluation(report, preprocessing, EvaluationParams(tta="flip"))
    assert (settings.tta, settings.contrast) == ("flip", "clahe")
    assert settings.output_settings.contrast == "clahe"  # inference equalises as training did
    images = np.random.default_rng(4).integers(0, 256, (3, *SIZE, 1), dtype=np.uint8)
    flipping = Classifier(classifier.model, tiny_settings(tta="flip"), "x")
    expected = (classifier.probabilities(images) + classifier.probabilities(images[:, :, ::-1])) / 2
    np.testing.assert_allclose(flipping.probabilities(images), expected, atol=1e-6)


def test_via_size_travels_with_the_model_and_older_packages_read_without_it() -> None:
    report = {"test": {"at_validation_threshold": None}, "validation": {"auc": 0.9}}
    preprocessing = PreprocessingParams(image_size=(40, 48), via_size=224)
    settings = settings_from_evaluation(report, preprocessing, EvaluationParams())
    assert settings.via_size == (224, 224)
    assert settings.output_settings.via_size == (224, 224)  # inference takes the same path
    assert InferenceSettings.from_config(settings.to_config(), "x") == settings
    older = {k: v for k, v in settings.to_config().items() if k != "via_size"}
    assert InferenceSettings.from_config(older, "x").output_settings.via_size is None
