"""Who is the chief of a multi-worker run, read from TF_CONFIG (no TensorFlow needed)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chest_xray.modeling.distributed import (
    TF_CONFIG,
    WorkerConfigError,
    WorkerRole,
    require_tensorflow_backend,
    worker_role,
)


def role(cluster: dict[str, Any], task_type: str, index: int = 0) -> WorkerRole:
    config = {"cluster": cluster, "task": {"type": task_type, "index": index}}
    return worker_role({TF_CONFIG: json.dumps(config)})


TWO_WORKERS = {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]}
CHIEF_AND_WORKERS = {"chief": ["10.0.0.9:2222"], **TWO_WORKERS}


def test_worker_0_is_the_chief_when_the_cluster_has_none() -> None:
    first, second = role(TWO_WORKERS, "worker", 0), role(TWO_WORKERS, "worker", 1)
    assert (first.is_chief, second.is_chief) == (True, False)
    assert second.n_workers == 2
    assert second.describe() == "worker:1, one of 2 workers, not the chief (worker:0 is)"


def test_a_chief_task_is_the_chief_and_worker_0_is_not() -> None:
    assert role(CHIEF_AND_WORKERS, "chief").is_chief
    worker = role(CHIEF_AND_WORKERS, "worker", 0)
    assert not worker.is_chief
    assert worker.n_workers == 3


def test_only_other_workers_back_up_beside_the_configured_folder() -> None:
    base = "data/06_models/checkpoints"
    assert role(TWO_WORKERS, "worker", 0).checkpoint_dir(base) == base
    assert role(TWO_WORKERS, "worker", 1).checkpoint_dir(base + "/") == f"{base}-worker-1"
    assert role(CHIEF_AND_WORKERS, "worker", 0).checkpoint_dir(base) == f"{base}-worker-0"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "TF_CONFIG is not set"),
        ({TF_CONFIG: "{cluster"}, "not valid JSON"),
        ({TF_CONFIG: json.dumps({"task": {"type": "worker"}})}, "needs a 'cluster' object"),
        (
            {
                TF_CONFIG: json.dumps(
                    {"cluster": {**TWO_WORKERS, "ps": ["h:1"]}, "task": {"type": "worker"}}
                )
            },
            "has ps tasks",
        ),
        (
            {
                TF_CONFIG: json.dumps(
                    {"cluster": TWO_WORKERS, "task": {"type": "worker", "index": 2}}
                )
            },
            "task worker:2 is not in its cluster",
        ),
        (
            {TF_CONFIG: json.dumps({"cluster": TWO_WORKERS, "task": {"type": "chief"}})},
            "task chief:0 is not in its cluster",
        ),
        (
            {TF_CONFIG: json.dumps({"cluster": {"worker": "h:1"}, "task": {"type": "worker"}})},
            "cluster.worker must be a list",
        ),
    ],
)
def test_an_unusable_tf_config_is_an_error_naming_it(environ: dict[str, str], message: str) -> None:
    with pytest.raises(WorkerConfigError, match=message):
        worker_role(environ)


def test_another_keras_backend_is_refused_naming_the_parameter() -> None:
    require_tensorflow_backend("tensorflow")
    with pytest.raises(
        WorkerConfigError, match=r"multi_worker needs the TensorFlow backend.*not jax"
    ):
        require_tensorflow_backend("jax")
