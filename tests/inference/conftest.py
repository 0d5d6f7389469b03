"""A tiny packaged model (untrained: these tests check plumbing, not accuracy)."""

from __future__ import annotations

from pathlib import Path

import keras
import pytest

from chest_xray.inference.classifier import Classifier
from chest_xray.inference.packaging import ServableModel, load_classifier, save_servable_model
from chest_xray.inference.settings import InferenceSettings
from chest_xray.modeling.model import build_model
from chest_xray.params import ModelParams

SIZE = (40, 48)  # (height, width): not square, so a swapped axis shows


def tiny_settings(**overrides: object) -> InferenceSettings:
    values: dict[str, object] = {
        "classes": ("NORMAL", "PNEUMONIA"),
        "image_size": SIZE,
        "resize_mode": "stretch",
        "jpeg_draft": True,
        "threshold": 0.5,
        "threshold_source": "evaluation.threshold",
        "validation_auc": 0.9,
    }
    return InferenceSettings.model_validate(values | overrides)


def tiny_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    params = ModelParams(conv_filters=[4, 8], dense_units=8, dropout=0.0)
    return build_model((*SIZE, 1), params)


@pytest.fixture(scope="session")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One saved package for the session (read only)."""
    path = tmp_path_factory.mktemp("package") / "servable_model"
    save_servable_model(ServableModel(tiny_model(), tiny_settings()), path)
    return path


@pytest.fixture(scope="session")
def classifier(package: Path) -> Classifier:
    return load_classifier(str(package))
