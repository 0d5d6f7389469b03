"""The champion alias follows the best validation AUC, never a worse retraining."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from chest_xray.inference.packaging import ServableModel, load_classifier, log_servable_model
from chest_xray.inference.registry import AUC_TAG, register_and_promote
from tests.inference.conftest import tiny_model, tiny_settings


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("registry-test")
    return uri


def train_and_register(auc: float | None) -> tuple[str, bool]:
    servable = ServableModel(tiny_model(), tiny_settings(validation_auc=auc))
    with mlflow.start_run():
        info = log_servable_model(servable, name="model")
    registration = register_and_promote(info.model_uri, "chest-xray", "champion", auc)
    return registration.version, registration.champion


def test_the_alias_moves_only_to_a_better_validation_auc(store: str) -> None:
    client = mlflow.MlflowClient()

    def champion() -> str:
        return str(client.get_model_version_by_alias("chest-xray", "champion").version)

    assert train_and_register(0.90) == ("1", True)  # the first version takes the alias
    assert train_and_register(0.80) == ("2", False)  # worse: stays on 1
    assert champion() == "1"
    assert train_and_register(0.90) == ("3", False)  # a tie is not better
    assert train_and_register(None) == ("4", False)  # unknown AUC never takes it
    assert train_and_register(0.95) == ("5", True)
    assert champion() == "5"
    assert client.get_model_version("chest-xray", "5").tags[AUC_TAG] == "0.95"
    # The alias, a version and a run all load as the same servable model.
    by_alias = load_classifier("models:/chest-xray@champion")
    assert by_alias.settings.validation_auc == 0.95
    assert load_classifier("models:/chest-xray/2").settings.validation_auc == 0.80


def test_a_multiclass_model_competes_for_its_own_alias(store: str) -> None:
    from chest_xray.inference.registry import TASK_TAG
    from chest_xray.modeling.model import build_model
    from chest_xray.params import ModelParams
    from tests.inference.conftest import SIZE

    client = mlflow.MlflowClient()
    assert train_and_register(0.80) == ("1", True)
    settings = tiny_settings(
        task="multiclass",
        classes=("NORMAL", "BACTERIA", "VIRUS"),
        threshold=None,
        threshold_source="argmax",
        validation_auc=0.99,
    )
    model = build_model((*SIZE, 1), ModelParams(conv_filters=[4], dense_units=8), n_classes=3)
    with mlflow.start_run():
        info = log_servable_model(ServableModel(model, settings), name="model")
    registration = register_and_promote(info.model_uri, "chest-xray", "champion", 0.99)
    assert (registration.version, registration.champion) == ("2", True)
    assert registration.alias == "champion_multiclass"
    # A higher AUC of another task does not take the binary model's alias.
    assert str(client.get_model_version_by_alias("chest-xray", "champion").version) == "1"
    assert client.get_model_version("chest-xray", "2").tags[TASK_TAG] == "multiclass"
    assert client.get_model_version("chest-xray", "1").tags[TASK_TAG] == "binary"
    assert load_classifier("models:/chest-xray@champion_multiclass").multiclass


def test_registering_prints_none_of_mlflows_progress_lines(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    train_and_register(0.9)
    train_and_register(0.8)  # "Registered model ... already exists" this time
    printed = capsys.readouterr().err
    assert "registered model" not in printed.lower() and "Created version" not in printed


def test_anything_else_mlflow_prints_while_registering_still_shows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import sys

    from chest_xray.inference.registry import _registered_quietly

    def register(uri: str, name: str) -> str:
        print(f"Successfully registered model '{name}'.", file=sys.stderr)
        print("WARNING something the user must see", file=sys.stderr)
        return f"{uri}->{name}"

    assert _registered_quietly(register, "runs:/x/model", "m") == "runs:/x/model->m"
    printed = capsys.readouterr().err
    assert printed == "WARNING something the user must see\n"
