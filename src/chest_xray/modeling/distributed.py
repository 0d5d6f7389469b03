"""Multi-worker training: which worker this process is, and the strategy all workers share.

Every worker of a multi-worker run starts the same ``kedro run``; what tells them apart
is ``TF_CONFIG``, the JSON that Kubernetes training operators, Vertex AI and SageMaker
set (``{"cluster": {"worker": ["host0:port", "host1:port"]}, "task": {"type": "worker",
"index": 1}}``). The chief, the one process that saves the model and logs to MLflow,
is the task ``chief`` where the cluster has one, else ``worker`` 0 (TensorFlow's rule).

``worker_role`` only parses JSON (no TensorFlow), so the Kedro hooks can decide at
start; ``multi_worker_strategy`` creates the TensorFlow strategy, once per process.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TF_CONFIG = "TF_CONFIG"
# Task types that train. ``ps`` (parameter servers) and ``evaluator`` belong to other
# strategies and are refused rather than silently trained as an extra copy.
TRAINING_TASKS = ("chief", "worker")


class WorkerConfigError(ValueError):
    """TF_CONFIG is missing or does not describe this process as a training worker."""


@dataclass(frozen=True)
class WorkerRole:
    """This process's place in the cluster: ``task_type``:``index`` of ``n_workers``."""

    task_type: str
    index: int
    n_workers: int
    chief: str  # "chief:0" or "worker:0"

    @property
    def name(self) -> str:
        return f"{self.task_type}:{self.index}"

    @property
    def is_chief(self) -> bool:
        return self.name == self.chief

    def checkpoint_dir(self, base: str) -> str:
        """Where this worker keeps its BackupAndRestore state.

        Every worker backs up its own copy (Keras' BackupAndRestore has no notion of
        workers); the chief keeps the configured folder, the others a sibling named
        after their task, so workers sharing a disk never write into each other's.
        """
        if self.is_chief:
            return base
        return f"{base.rstrip('/')}-{self.task_type}-{self.index}"

    def describe(self) -> str:
        role = "the chief" if self.is_chief else f"not the chief ({self.chief} is)"
        return f"{self.name}, one of {self.n_workers} workers, {role}"


def worker_role(environ: Mapping[str, str] | None = None) -> WorkerRole:
    """This process's role from ``TF_CONFIG``; an error naming TF_CONFIG if it has none."""
    raw = (os.environ if environ is None else environ).get(TF_CONFIG, "").strip()
    if not raw:
        raise WorkerConfigError(
            f"training.distribution is multi_worker but {TF_CONFIG} is not set: every worker "
            f"needs it (the cluster's addresses and this worker's task), e.g. "
            '{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]}, '
            '"task": {"type": "worker", "index": 0}} (README "Training on several machines")'
        )
    try:
        config = json.loads(raw)
    except ValueError as error:
        raise WorkerConfigError(f"{TF_CONFIG} is not valid JSON: {error}") from error
    cluster = _mapping(config, "cluster")
    task = _mapping(config, "task")
    unsupported = sorted(set(cluster) - set(TRAINING_TASKS))
    if unsupported:
        raise WorkerConfigError(
            f"{TF_CONFIG}'s cluster has {', '.join(unsupported)} tasks; multi_worker training "
            f"(MultiWorkerMirroredStrategy) takes only {' and '.join(TRAINING_TASKS)}"
        )
    sizes = {kind: _addresses(cluster, kind) for kind in TRAINING_TASKS}
    if sizes["chief"] > 1:
        raise WorkerConfigError(f"{TF_CONFIG}'s cluster lists {sizes['chief']} chiefs; at most 1")
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in TRAINING_TASKS or not isinstance(index, int):
        raise WorkerConfigError(
            f"{TF_CONFIG}'s task must be chief or worker with an integer index, got {task}"
        )
    if not 0 <= index < sizes[task_type]:
        raise WorkerConfigError(
            f"{TF_CONFIG}'s task {task_type}:{index} is not in its cluster "
            f"({sizes[task_type]} {task_type} address(es))"
        )
    return WorkerRole(
        task_type=task_type,
        index=index,
        n_workers=sizes["chief"] + sizes["worker"],
        chief="chief:0" if sizes["chief"] else "worker:0",
    )


def _mapping(config: Any, key: str) -> dict[str, Any]:
    value = config.get(key) if isinstance(config, dict) else None
    if not isinstance(value, dict):
        raise WorkerConfigError(f"{TF_CONFIG} needs a '{key}' object, got {value!r}")
    return value


def _addresses(cluster: dict[str, Any], kind: str) -> int:
    addresses = cluster.get(kind, [])
    if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
        raise WorkerConfigError(f"{TF_CONFIG}'s cluster.{kind} must be a list of host:port")
    return len(addresses)


def require_tensorflow_backend(backend: str) -> None:
    """multi_worker is TensorFlow's strategy: on another Keras backend, an error saying so."""
    if backend != "tensorflow":
        raise WorkerConfigError(
            "training.distribution: multi_worker needs the TensorFlow backend "
            f"(KERAS_BACKEND=tensorflow), not {backend}: on JAX, Keras' keras.distribution "
            "(initialize, DataParallel) is the way, not implemented here "
            '(README "Training on several machines")'
        )


@functools.cache
def multi_worker_strategy() -> Any:
    """The process's ``tf.distribute.MultiWorkerMirroredStrategy`` (cluster from TF_CONFIG).

    Created once: TensorFlow configures its collective ops when the first one is made,
    which must happen before any other TensorFlow op runs in the process (the hooks
    make it when the pipeline starts, before anything lists devices). Creating it
    blocks until every worker of the cluster has started.
    """
    import tensorflow as tf

    class _KerasCompatibleStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        """Keras 3's ``fit`` averages each step's scalar metrics over workers with
        ``reduce("MEAN", value, axis=0)``, which TensorFlow refuses for a scalar
        (tensorflow/tensorflow#72388): over replicas, ``axis=None`` is that mean."""

        def reduce(self, reduce_op: Any, value: Any, axis: Any) -> Any:
            if axis is not None and all(
                getattr(local, "shape", None) is not None and local.shape.rank == 0
                for local in self.experimental_local_results(value)
            ):
                axis = None
            return super().reduce(reduce_op, value, axis)

    return _KerasCompatibleStrategy()
