"""Every environment's parameters are valid typed parameters, and say what they claim."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader

from chest_xray import params as typed
from chest_xray.settings import CONFIG_LOADER_ARGS
from chest_xray.tools.demo_data import DemoDatasetFacts

CONF = Path(__file__).resolve().parents[1] / "conf"
ENVS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name not in {"base", "local"})
GROUPS = {
    "metadata": typed.MetadataParams,
    "preprocessing": typed.PreprocessingParams,
    "split": typed.SplitParams,
    "training": typed.TrainingParams,
    "evaluation": typed.EvaluationParams,
    "inference": typed.InferenceParams,
    "cross_validation": typed.CrossValidationParams,
}


def parameters(env: str) -> dict:  # type: ignore[type-arg]
    loader = OmegaConfigLoader(str(CONF), env=env, **CONFIG_LOADER_ARGS)
    return dict(loader["parameters"])


@pytest.mark.parametrize("env", ["base", *ENVS])
def test_every_environment_gives_valid_typed_parameters(env: str) -> None:
    values = parameters("local" if env == "base" else env)
    for group, model in GROUPS.items():
        model.model_validate(values[group])


def test_training_picks_its_precision_by_default_and_the_writeup_pins_float32() -> None:
    """conf/base: ``auto`` (the machine's fast precision); conf/writeup: float32 as trained."""
    for env in ("local", *ENVS):
        training = typed.TrainingParams.model_validate(parameters(env)["training"])
        assert training.mixed_precision == ("none" if env == "writeup" else "auto"), env


@pytest.mark.parametrize("env", ["base", *ENVS])
def test_every_run_hashes_the_pngs_it_reuses(env: str) -> None:
    """Issue #24: a PNG damaged in place (size and time kept) is made again by a plain run."""
    values = parameters("local" if env == "base" else env)
    assert typed.PreprocessingParams.model_validate(values["preprocessing"]).verify_pngs


def test_the_writeup_environment_is_the_write_ups_recipe() -> None:
    values = parameters("writeup")
    training = typed.TrainingParams.model_validate(values["training"])
    assert training.epochs == 60 and training.batch_size == 32
    assert training.optimizer.name == "adam" and training.optimizer.learning_rate == 1e-4
    assert training.optimizer.schedule == "constant" and not training.optimizer.ema
    assert training.model.conv_filters == [32, 64, 128, 128] and training.model.head == "flatten"
    assert training.model.input_normalisation == "none" and not training.model.batch_norm
    assert training.mixed_precision == "none"
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


@pytest.mark.parametrize(("env", "epochs", "size"), [("local", 60, 300), ("cpu", 60, 150)])
def test_the_defaults_are_the_screened_recipe(env: str, epochs: int, size: int) -> None:
    """conf/base and conf/cpu: the write-up's VGG with the levers the screening kept
    (docs/model_quality.md): per-image standardisation, AdamW with a cosine schedule."""
    values = parameters(env)
    training = typed.TrainingParams.model_validate(values["training"])
    assert training.model.input_normalisation == "standardize"
    assert not training.model.batch_norm and training.model.head == "flatten"
    optimizer = training.optimizer
    assert (optimizer.name, optimizer.schedule, optimizer.learning_rate) == (
        "adamw",
        "cosine",
        3e-4,
    )
    assert optimizer.warmup_epochs == 1 and training.epochs == epochs
    preprocessing = typed.PreprocessingParams.model_validate(values["preprocessing"])
    assert preprocessing.image_size == (size, size)
    # The threshold rule that was steadier across the screening's seeds where Youden swung.
    evaluation = typed.EvaluationParams.model_validate(values["evaluation"])
    assert evaluation.validation_threshold == "equal_error"


def test_every_parameter_group_is_checked_here() -> None:
    assert set(parameters("local")) == set(GROUPS)


@pytest.mark.parametrize("folds", [1, 21])
def test_a_fold_count_out_of_range_names_the_parameter(folds: int) -> None:
    with pytest.raises(ValueError, match="folds"):
        typed.CrossValidationParams(folds=folds)


# Runs `kedro` in a fresh interpreter and prints, as it exits, which of the two it imported.
KEDRO_REPORTING_IMPORTS = (
    "import atexit, sys\n"
    "heavy = {'keras', 'tensorflow'}\n"
    "atexit.register(lambda: print('imported:', sorted(heavy & set(sys.modules))))\n"
    "from kedro.framework.cli import main\n"
    "main()\n"
)


@pytest.mark.parametrize(
    ("pipeline", "extra_params", "returncode"),
    [
        ("data_processing", "", 0),  # prepares the data: no model anywhere
        ("__default__", ",training.epochs=-1", 1),  # stops on the parameter, before any node
    ],
    ids=["data_processing", "bad_parameter"],
)
def test_a_run_that_needs_no_model_never_imports_keras(
    kedro_project: Path,
    demo_dataset: DemoDatasetFacts,
    pipeline: str,
    extra_params: str,
    returncode: int,
) -> None:
    """Every ``kedro`` command loads the settings and hooks, registers every pipeline and
    builds every dataset of the catalog (kedro-mlflow's hook walks them all): none of it
    may pay for TensorFlow (about 3 s and 0.5 GB) before a node needs it."""
    params = f"raw_root={demo_dataset.root},preprocessing.workers=1{extra_params}"
    command = ["run", "--env=demo", f"--pipelines={pipeline}", f"--params={params}"]
    result = subprocess.run(
        [sys.executable, "-c", KEDRO_REPORTING_IMPORTS, *command],
        cwd=kedro_project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == returncode, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "imported: []"


def test_a_run_logs_its_nodes_not_every_dataset(
    kedro_project: Path, demo_dataset: DemoDatasetFacts
) -> None:
    """conf/logging.yml holds Kedro's dataset lines back, not its node lines."""
    params = f"raw_root={demo_dataset.root},preprocessing.workers=1"
    command = ["run", "--env=demo", "--pipelines=data_processing", f"--params={params}"]
    result = subprocess.run(
        [sys.executable, "-m", "kedro", *command],
        cwd=kedro_project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=os.environ | {"COLUMNS": "200"},  # rich wraps its lines at the terminal width
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-2000:]
    assert "Running node: join_metadata" in log and "Run summary" in log
    assert "Loading data from" not in log and "Saving data to" not in log
