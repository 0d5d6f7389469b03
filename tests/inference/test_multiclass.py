"""A multiclass package: its settings, a class per file with every class's probability,
the served model's answer and Grad-CAM overlays of the predicted class."""

from __future__ import annotations

import base64
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from chest_xray.inference.batch import PREDICTION_COLUMNS, predict_files
from chest_xray.inference.classifier import OOD_COLUMNS, Classifier
from chest_xray.inference.explain import gradcam_overlays
from chest_xray.inference.packaging import ServableModel, load_classifier, save_servable_model
from chest_xray.inference.settings import InferenceSettings
from chest_xray.modeling.model import build_model
from chest_xray.params import ModelParams
from tests.inference.conftest import SIZE, tiny_settings
from tests.inference.new_images import encoded

CLASSES = ("NORMAL", "BACTERIA", "VIRUS")
PROBABILITIES = [f"probability_{name}" for name in CLASSES]


def multiclass_settings() -> InferenceSettings:
    return tiny_settings(
        task="multiclass", classes=CLASSES, threshold=None, threshold_source="argmax"
    )


@pytest.fixture(scope="module")
def multiclass_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keras.utils.set_random_seed(0)
    params = ModelParams(conv_filters=[4, 8], dense_units=8, dropout=0.0)
    model = build_model((*SIZE, 1), params, n_classes=len(CLASSES))
    path = tmp_path_factory.mktemp("package") / "servable_model"
    save_servable_model(ServableModel(model, multiclass_settings()), path)
    return path


@pytest.fixture(scope="module")
def multiclass_classifier(multiclass_package: Path) -> Classifier:
    return load_classifier(str(multiclass_package))


def _files() -> dict[str, bytes]:
    rng = np.random.default_rng(7)
    return {
        f"scan{k}.png": encoded(rng.integers(0, 256, (90, 70), dtype=np.uint8), "PNG")
        for k in range(3)
    }


def test_settings_match_the_task() -> None:
    assert multiclass_settings().decision == "most probable of 3 classes"
    with pytest.raises(ValueError, match="multiclass model needs three or more classes"):
        tiny_settings(task="multiclass", threshold=None, threshold_source="argmax")
    with pytest.raises(ValueError, match="no threshold"):
        tiny_settings(task="multiclass", classes=CLASSES)  # a threshold of 0.5
    with pytest.raises(ValueError, match="binary model needs two classes and a threshold"):
        tiny_settings(threshold=None)


def test_each_file_gets_the_most_probable_class_and_every_probability(
    multiclass_classifier: Classifier,
) -> None:
    files = _files()
    result = predict_files({n: (lambda d=d: d) for n, d in files.items()}, multiclass_classifier)
    table = result.predictions
    assert list(table.columns) == [*PREDICTION_COLUMNS, *PROBABILITIES]
    matrix = table[PROBABILITIES].to_numpy()
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-5)
    assert list(table["label"]) == [CLASSES[k] for k in matrix.argmax(axis=1)]
    np.testing.assert_allclose(table["probability"], matrix.max(axis=1))
    assert table["threshold"].isna().all()
    assert (table["threshold_source"] == "argmax").all()


def test_the_served_model_answers_a_class_and_its_probabilities(
    multiclass_package: Path, multiclass_classifier: Classifier
) -> None:
    import mlflow.pyfunc

    served = mlflow.pyfunc.load_model(str(multiclass_package))
    data = next(iter(_files().values()))
    out = served.predict(pd.DataFrame({"image": [base64.b64encode(data).decode()]}))
    assert list(out.columns) == ["probability", "label", *OOD_COLUMNS, "threshold", *PROBABILITIES]
    expected = multiclass_classifier.probabilities(
        multiclass_classifier.pixels(data, "x")[np.newaxis]
    )[0]
    np.testing.assert_allclose(out[PROBABILITIES].to_numpy()[0], expected, atol=1e-6)
    assert out["label"][0] == CLASSES[int(np.argmax(expected))]


def test_gradcam_overlays_of_a_multiclass_model(multiclass_classifier: Classifier) -> None:
    files = _files()
    overlays = gradcam_overlays(
        {n: (lambda d=d: d) for n, d in files.items()}, list(files), multiclass_classifier
    )
    png = overlays["scan0.png"]()
    assert png.startswith(b"\x89PNG")
