"""The MLflow Model Registry: every packaged model a version, the best one the champion.

Rule: a new version takes the alias (``champion``) when the alias points at no
version yet, or when its validation AUC is strictly higher than the current
champion's (recorded on each version as the ``validation_auc`` tag). A version
without a validation AUC never takes the alias from one that has it. So
``models:/chest-xray@champion`` always names the best model on the validation
split so far, and a worse retraining never replaces it.

A multiclass model (``training.task: multiclass``) answers other labels than a
binary one, so it never takes a binary model's alias: its versions compete for
``<alias>_multiclass`` (``models:/chest-xray@champion_multiclass``) among
themselves, with their macro validation AUC. The version's ``task`` tag says which.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import sys
from dataclasses import dataclass
from typing import Any

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

logger = logging.getLogger(__name__)

AUC_TAG = "validation_auc"
TASK_TAG = "task"


# What ``mlflow.register_model`` prints itself (its ``eprint``, straight to stderr, no
# logger to configure): the run's own log line and summary say the registration instead.
_MLFLOW_CHATTER = ("Successfully registered model", "Registered model", "Created version")


def _registered_quietly(register: Any, model_uri: str, name: str) -> ModelVersion:
    """``register(model_uri, name)`` with MLflow's progress prints kept at DEBUG; anything
    else it writes to stderr (a warning, an error) still reaches stderr."""
    printed = io.StringIO()
    with contextlib.redirect_stderr(printed):
        version: ModelVersion = register(model_uri, name)
    for line in printed.getvalue().splitlines():
        if line.startswith(_MLFLOW_CHATTER):
            logger.debug("mlflow: %s", line)
        elif line.strip():
            print(line, file=sys.stderr)
    return version


@dataclass(frozen=True)
class Registration:
    name: str
    version: str
    champion: bool  # this version holds the alias now
    previous_champion: str | None
    alias: str | None = None  # the alias this version competed for (per task)


def register_and_promote(
    model_uri: str, name: str, alias: str | None, validation_auc: float | None
) -> Registration:
    """Register ``model_uri`` under ``name``; move ``alias`` to it if it is better."""
    import mlflow

    client = MlflowClient()
    version = _registered_quietly(mlflow.register_model, model_uri, name).version
    if validation_auc is not None:
        client.set_model_version_tag(name, version, AUC_TAG, repr(float(validation_auc)))
    task = model_task(model_uri)
    client.set_model_version_tag(name, version, TASK_TAG, task)
    if alias is None:
        return Registration(name, str(version), False, None)
    if task != "binary":
        alias = f"{alias}_{task}"
    current = _champion(client, name, alias)
    current_auc = _auc(current.tags.get(AUC_TAG)) if current is not None else None
    promote = current is None or (
        validation_auc is not None and (current_auc is None or validation_auc > current_auc)
    )
    if promote:
        client.set_registered_model_alias(name, alias, version)
    previous = None if current is None else str(current.version)
    logger.info(
        "Registered %s version %s (validation AUC %s); @%s -> version %s",
        name,
        version,
        validation_auc,
        alias,
        version if promote else previous,
    )
    return Registration(name, str(version), promote, previous, alias)


def model_task(model_uri: str) -> str:
    """``binary`` or ``multiclass``, from the package's metadata (binary when it says none)."""
    from mlflow.models import get_model_info

    metadata = get_model_info(model_uri).metadata or {}
    return str((metadata.get("chest_xray") or {}).get("task", "binary"))


def _champion(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(error).lower():
            return None
        raise


def _auc(value: str | None) -> float | None:
    try:
        auc = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return None if math.isnan(auc) else auc
