"""Every environment's parameters are valid typed parameters, and say what they claim."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader

from chest_xray import params as typed
from chest_xray.settings import CONFIG_LOADER_ARGS

CONF = Path(__file__).resolve().parents[1] / "conf"
ENVS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name not in {"base", "local"})
GROUPS = {
    "metadata": typed.MetadataParams,
    "preprocessing": typed.PreprocessingParams,
    "split": typed.SplitParams,
    "training": typed.TrainingParams,
    "evaluation": typed.EvaluationParams,
    "inference": typed.InferenceParams,
}


def parameters(env: str) -> dict:  # type: ignore[type-arg]
    loader = OmegaConfigLoader(str(CONF), env=env, **CONFIG_LOADER_ARGS)  # type: ignore[arg-type]
    return dict(loader["parameters"])


@pytest.mark.parametrize("env", ["base", *ENVS])
def test_every_environment_gives_valid_typed_parameters(env: str) -> None:
    values = parameters("local" if env == "base" else env)
    for group, model in GROUPS.items():
        model.model_validate(values[group])


def test_the_writeup_environment_is_the_write_ups_recipe() -> None:
    values = parameters("writeup")
    training = typed.TrainingParams.model_validate(values["training"])
    assert training.epochs == 60 and training.batch_size == 32
    assert training.optimizer.name == "adam" and training.optimizer.learning_rate == 1e-4
    assert training.model.conv_filters == [32, 64, 128, 128] and training.model.head == "flatten"
    augmentation = training.augmentation
    assert (augmentation.rotation_degrees, augmentation.zoom, augmentation.shear) == (40, 0.2, 0.2)
    assert not training.early_stopping.enabled and training.class_weight == "none"
    split = typed.SplitParams.model_validate(values["split"])
    assert (split.strategy, split.seed, split.validation_fraction) == ("random", 2, 0.2)
    preprocessing = typed.PreprocessingParams.model_validate(values["preprocessing"])
    assert preprocessing.image_size == (300, 300) and preprocessing.resize_mode == "stretch"
    assert preprocessing.contrast == "none"
    evaluation = typed.EvaluationParams.model_validate(values["evaluation"])
    assert evaluation.threshold == 0.5 and evaluation.model_threshold == "fixed"
