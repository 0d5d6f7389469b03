"""MLflow helpers for the project hooks: run identity, health checks, stale runs, logging.

Nothing here is a node or a hook: ``chest_xray.hooks.MlflowHooks`` decides *when*
to call these, so each piece can be tested on its own against a real tracking
store. TensorFlow/Keras and ``mlflow.keras`` are imported lazily: a
data-processing run never pays for them.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from mlflow.entities import Metric, RunStatus
from mlflow.tracking import MlflowClient

if TYPE_CHECKING:
    import keras
    import pandas as pd
    from mlflow.models.model import ModelInfo

logger = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
HEALTH_TIMEOUT_S = 5.0
MAX_TAG_LENGTH = 5000  # MLflow allows 8000; keep error tags readable

# Tags set on every tracked run (see README "Tracking runs with MLflow").
TAG_GIT_COMMIT = "git_commit"
TAG_GIT_DIRTY = "git_dirty"
TAG_KEDRO_ENV = "kedro_env"
TAG_PIPELINE = "pipeline"
TAG_DATA_FINGERPRINT = "data_fingerprint"
TAG_KERAS_BACKEND = "keras_backend"
TAG_DEVICE = "device"
TAG_DEVICES = "devices"
TAG_HOST = "host"
TAG_PID = "pid"
TAG_ERROR = "error"
TAG_END_REASON = "end_reason"


# ------------------------------------------------------------------ tracking server


class TrackingServerUnreachableError(RuntimeError):
    """The configured MLflow tracking server did not answer: stop before any work."""


def check_tracking_server(uri: str | None, timeout: float = HEALTH_TIMEOUT_S) -> None:
    """Fail fast, naming ``uri``, when an http(s) tracking server does not answer.

    Without this MLflow retries for minutes before the first write. Any HTTP
    answer (even 401/404 from a proxy) counts as reachable: only a refused or
    timed-out connection, or a bad TLS handshake, is an error. Other schemes
    (sqlite, file, databricks) are not checked.
    """
    if not uri or urlparse(uri).scheme not in {"http", "https"}:
        return
    url = uri.rstrip("/") + "/health"
    context = None
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        context = ssl._create_unverified_context()
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context):
            return
    except urllib.error.HTTPError:
        return  # something answered
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise TrackingServerUnreachableError(
            f"MLflow tracking server {uri} is not reachable ({reason}). Start it, point "
            f"MLFLOW_TRACKING_URI at a running server (or unset it to track to "
            f"{DEFAULT_TRACKING_URI}), or run without tracking: kedro run --env=no_tracking"
        ) from err


# ----------------------------------------------------------------------- run identity


def run_name(pipeline_names: Iterable[str] | None, run_id: str) -> str:
    """``training-1a2b3c4d``: readable in the UI and unique within the experiment."""
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


def manifest_csv(manifest: pd.DataFrame) -> str:
    """The manifest as CatalogCSV writes it (``index=False``): the fingerprinted content."""
    return manifest.to_csv(index=False)


def fingerprint(text: str) -> str:
    """Short content hash: equal data gives equal fingerprints across runs."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# ------------------------------------------------------------------------- logging


def history_metrics(history: dict[str, list[float]]) -> list[Metric]:
    """Per-epoch Keras metrics (loss, accuracy, auc, val_*) with ``step`` = epoch (1-based)."""
    epochs = history.get("epoch") or list(range(1, 1 + max(map(len, history.values()), default=0)))
    now = int(time.time() * 1000)
    return [
        Metric(key=key, value=float(value), timestamp=now, step=int(epoch))
        for key, values in history.items()
        if key != "epoch"
        for epoch, value in zip(epochs, values, strict=False)
    ]


def log_metric_batch(client: MlflowClient, run_id: str, metrics: list[Metric]) -> None:
    """One request per 1000 values (MLflow's batch limit) instead of one per value."""
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start : start + 1000], synchronous=True)


def evaluation_metrics(flat: dict[str, float]) -> dict[str, float]:
    """``flat_metrics`` for MLflow: ``val_*`` become ``validation_*``.

    Keras' per-epoch ``val_accuracy``/``val_auc`` already use those keys (with a
    step); the evaluation of the final model on the validation split must not be
    appended to that curve.
    """
    return {
        (f"validation_{key[4:]}" if key.startswith("val_") else key): value
        for key, value in flat.items()
    }


def _pip_requirements() -> list[str] | None:
    """Pinned keras + backend; given explicitly, MLflow skips a slow inference subprocess."""
    import keras

    candidates = {
        "tensorflow": ["tensorflow", "tensorflow-cpu"],
        "jax": ["jax"],
        "torch": ["torch"],
    }.get(keras.backend.backend(), [])
    requirements = [f"keras=={keras.__version__}"]
    for name in candidates:
        with contextlib.suppress(metadata.PackageNotFoundError):
            requirements.append(f"{name}=={metadata.version(name)}")
            return requirements
    return None


def _inference_copy(model: keras.Model) -> keras.Model:
    """The same weights, uncompiled: a ``.keras`` file of a compiled model carries
    Adam's two slots per weight (3x the size). ``clone_model`` would recompile it."""
    try:
        copy = type(model).from_config(model.get_config())
        copy.set_weights(model.get_weights())
    except Exception as err:  # a subclassed model may not rebuild: log it whole
        logger.warning("Logging the model with its optimizer state (%s)", err)
        return model
    return copy


def _signature(model: keras.Model) -> Any:
    """Tensor signature: float pixels 0..255 in (N, H, W, 1), P(PNEUMONIA) out."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    def spec(tensor: Any) -> TensorSpec:
        shape = (-1, *(-1 if dim is None else int(dim) for dim in tuple(tensor.shape)[1:]))
        return TensorSpec(np.dtype(str(tensor.dtype)), shape)

    return ModelSignature(
        inputs=Schema([spec(model.inputs[0])]), outputs=Schema([spec(model.outputs[0])])
    )


def log_keras_model(model: keras.Model, name: str = "model") -> ModelInfo:
    """Log ``model`` in MLflow's Keras flavour (``mlflow.keras``/``pyfunc`` reload it)."""
    import mlflow.keras

    return mlflow.keras.log_model(
        _inference_copy(model),
        name=name,
        signature=_signature(model),
        pip_requirements=_pip_requirements(),
    )


# ---------------------------------------------------------------------- stale runs


def _process_started_at(pid: int) -> float | None:
    """Start time (epoch seconds) of a live process from /proc; None if unknown or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, StopIteration, ValueError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return -1.0  # a zombie has finished
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def process_is_gone(pid: int, run_started_ms: int) -> bool:
    """True when no process ``pid`` can own a run started at ``run_started_ms``.

    A pid that exists but was started after the run (pid reuse) is not the owner.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # exists, owned by someone else
    started = _process_started_at(pid)
    if started is None:
        return False
    return started < 0 or started > run_started_ms / 1000 + 2.0


def close_stale_runs(client: MlflowClient, experiment_id: str, current_run_id: str) -> list[str]:
    """Mark this host's RUNNING runs whose process is gone as KILLED; return their ids.

    A SIGKILL (or power loss) leaves no chance to close a run, so the next start
    does it. Runs of other hosts, or without host/pid tags, are left alone.
    """
    host = socket.gethostname()
    closed = []
    for run in client.search_runs(
        [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=500
    ):
        tags = run.data.tags
        if run.info.run_id == current_run_id or tags.get(TAG_HOST) != host:
            continue
        try:
            pid = int(tags.get(TAG_PID, ""))
        except ValueError:
            continue
        if not process_is_gone(pid, run.info.start_time):
            continue
        client.set_tag(
            run.info.run_id,
            TAG_END_REASON,
            f"process {pid} on {host} ended without closing the run "
            f"(found by run {current_run_id})",
        )
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
        logger.warning("Marked MLflow run %s (pid %d, gone) as KILLED", run.info.run_id, pid)
        closed.append(run.info.run_id)
    return closed


# ------------------------------------------------------------------------- signals


class TerminatedBySignalError(Exception):
    """SIGTERM as an ordinary exception, so Kedro's ``on_pipeline_error`` hooks run."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"Received {signal.Signals(signum).name}: the run was stopped")


def _raise_terminated(signum: int, frame: Any) -> None:
    raise TerminatedBySignalError(signum)


def raise_on_sigterm() -> Callable[[], None]:
    """Turn SIGTERM into ``TerminatedBySignalError`` until the returned undo is called.

    Only the main thread may set handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(signal.SIGTERM, _raise_terminated)

    def restore() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)

    return restore
