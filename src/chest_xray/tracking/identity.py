"""Who a run is: its name and the tags that say which code, data and machine produced it.

The tag names are this project's, on top of kedro-mlflow's (``env``,
``pipeline_names``, ``kedro_command``, ... set from Kedro's run parameters):
see README "Tracking runs with MLflow". Keras is imported only by
``keras_tags`` and ``precision_policy``, so a data-processing run never pays for it.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chest_xray.params import TrainingParams

logger = logging.getLogger(__name__)

TAG_GIT_COMMIT = "git_commit"
TAG_GIT_DIRTY = "git_dirty"
TAG_DATA_FINGERPRINT = "data_fingerprint"
TAG_KERAS_BACKEND = "keras_backend"
TAG_DEVICE = "device"
TAG_DEVICES = "devices"
TAG_HOST = "host"
TAG_PID = "pid"
TAG_ERROR = "error"
TAG_END_REASON = "end_reason"
TAG_RESUMED_AFTER_EPOCH = "resumed_after_epoch"  # training resumed from its checkpoint

MAX_TAG_LENGTH = 5000  # MLflow allows 8000; keep error tags readable


def kedro_mlflow_run_name(pipeline_names: Iterable[str] | None) -> str:
    """The name kedro-mlflow gives a run when mlflow.yml names none."""
    return "+".join(pipeline_names or ["__default__"])


def run_name(pipeline_names: Iterable[str] | None, run_id: str) -> str:
    """``training+evaluation-1a2b3c4d``: readable in the UI and unique within the experiment."""
    names = [name.strip("_") or name for name in (pipeline_names or ["__default__"])]
    return f"{'+'.join(names)}-{run_id[:8]}"


def git_tags(path: Path | str) -> dict[str, str]:
    """Commit and dirty flag of the repository holding ``path``; ``unknown`` outside git."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(path), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain"))
    except (OSError, subprocess.SubprocessError) as err:
        logger.debug("No git information for %s: %s", path, err)
        return {TAG_GIT_COMMIT: "unknown", TAG_GIT_DIRTY: "unknown"}
    return {
        TAG_GIT_COMMIT: commit,
        TAG_GIT_DIRTY: str(dirty).lower(),
        "mlflow.source.git.commit": commit,  # shown by the MLflow UI
    }


def process_tags() -> dict[str, str]:
    """Who owns the run: lets a later start tell a crashed run from a live one."""
    return {TAG_HOST: socket.gethostname(), TAG_PID: str(os.getpid())}


def keras_tags() -> dict[str, str]:
    """Keras backend and the devices it trains on (CPU/GPU/TPU)."""
    import keras

    devices = [str(device) for device in keras.distribution.list_devices()]
    kinds = {device.split(":")[0].upper() for device in devices}
    kind = next((k for k in ("GPU", "TPU") if k in kinds), "CPU")
    return {
        TAG_KERAS_BACKEND: keras.backend.backend(),
        TAG_DEVICE: kind,
        TAG_DEVICES: ",".join(devices),
    }


def precision_policy(params: TrainingParams) -> str:
    """The Keras policy the training runs in: ``auto`` resolved on this machine, by the
    rule the trainer applies (``modeling.precision``)."""
    from chest_xray.modeling.precision import resolve_precision

    return resolve_precision(params.mixed_precision).policy
