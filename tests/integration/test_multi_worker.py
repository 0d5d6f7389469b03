"""Multi-worker training: two ``kedro run --pipelines=training`` workers on 127.0.0.1.

The README's two-machine recipe on one machine: the same command in the same project
folder, each process with its own TF_CONFIG (a cluster of two workers on free ports),
TensorFlow on the CPU. Both must finish; the chief (worker 0) alone saves the model and
the training reports and logs one MLflow run; the other worker writes nothing there,
and the weights the chief saved are the weights each worker holds at the end (each logs
a digest of them). Sharing one folder is the harder case for the checkpoints: each
worker backs up into its own (``WorkerRole.checkpoint_dir``), and both are gone after.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from chest_xray.tools.demo_data import DemoDatasetFacts
from tests.conftest import RunKedro
from tests.processes import free_port, start_logged, stop, tail

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("tensorflow") is None,
        reason="multi-worker training needs TensorFlow (MultiWorkerMirroredStrategy)",
    ),
]

# Guards against a hang, not a timed assertion: the run takes about a minute on 2 cores.
WORKERS_TIMEOUT_S = 300
EPOCHS = 2
# A plain one-line-per-record format, so the workers' logs can be read back whole.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {"plain": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {"kedro": {"level": "INFO"}, "chest_xray": {"level": "INFO"}},
    "root": {"handlers": ["plain"], "level": "WARNING"},
}
DIGEST = re.compile(r"Trained weights: sha256 ([0-9a-f]{64})")


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def start_worker(project: Path, index: int, cluster: dict[str, list[str]], log: Path) -> Any:
    config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
    env = {
        **os.environ,
        "TF_CONFIG": json.dumps(config),
        "KERAS_BACKEND": "tensorflow",
        "CUDA_VISIBLE_DEVICES": "",  # CPU only, whatever the machine has
        "KEDRO_DISABLE_TELEMETRY": "1",
        # One thread per op each: two workers share the CPU cores of one machine.
        "TF_NUM_INTRAOP_THREADS": "1",
        "TF_NUM_INTEROP_THREADS": "1",
        "KEDRO_LOGGING_CONFIG": str(log.with_suffix(".logging.json")),
    }
    log.with_suffix(".logging.json").write_text(json.dumps(LOGGING))
    command = [
        str(Path(sys.executable).with_name("kedro")),
        "run",
        "--env=demo",
        "--pipelines=training",
        f"--params=training.distribution=multi_worker,training.epochs={EPOCHS}",
    ]
    return start_logged(command, log, cwd=project, env=env)


def _run_two_workers(project: Path, tmp_path: Path) -> tuple[str, str]:
    """Both workers' training to their end on two free local ports; their logs, chief first."""
    ports = [free_port()]
    while len(ports) < 2:
        port = free_port()
        if port not in ports:
            ports.append(port)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    logs = [tmp_path / f"worker-{index}.log" for index in (0, 1)]
    workers = [start_worker(project, index, cluster, logs[index]) for index in (0, 1)]
    deadline = time.monotonic() + WORKERS_TIMEOUT_S
    try:
        for worker in workers:
            worker.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"the workers did not finish in {WORKERS_TIMEOUT_S} s:\n"
            + "\n".join(f"--- worker {i}\n{tail(log)}" for i, log in enumerate(logs))
        )
    finally:
        for worker in workers:
            stop(worker)
    for index, worker in enumerate(workers):
        assert worker.returncode == 0, (
            f"worker {index} exited {worker.returncode}:\n{tail(logs[index])}"
        )
    chief_log, other_log = (log.read_text() for log in logs)
    return chief_log, other_log


def test_two_workers_train_one_model_saved_and_tracked_by_the_chief(
    kedro_project: Path, run_kedro: RunKedro, demo_dataset: DemoDatasetFacts, tmp_path: Path
) -> None:
    run_kedro(
        pipeline_names=["data_processing"], runtime_params={"raw_root": str(demo_dataset.root)}
    )
    data = kedro_project / "data"
    before = files_under(data)
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("chest-xray")
    runs_before = {r.info.run_id for r in client.search_runs([experiment.experiment_id])}

    chief_log, other_log = _run_two_workers(kedro_project, tmp_path)
    assert "this process is worker:0, one of 2 workers, the chief" in chief_log
    assert "this process is worker:1, one of 2 workers, not the chief (worker:0 is)" in other_log
    assert "keeps its outputs in memory, unsaved" in other_log

    # The chief's outputs and nothing else: one model version, the history and its plot;
    # no worker's checkpoint folder left behind.
    new = sorted(files_under(data) - before)
    assert len(new) == 3, new
    model_file, *reports = new
    assert re.fullmatch(r"06_models/model\.keras/[^/]+/model\.keras", model_file), new
    assert reports == ["08_reporting/training_curves.png", "08_reporting/training_history.json"]
    assert len(list((data / "06_models" / "model.keras").iterdir())) == 1
    assert not [p.name for p in (data / "06_models").iterdir() if "checkpoints" in p.name]

    # One MLflow run for the two workers: the chief's, with its training history.
    new_runs = [
        r
        for r in client.search_runs([experiment.experiment_id])
        if r.info.run_id not in runs_before
    ]
    assert len(new_runs) == 1, [r.info.run_name for r in new_runs]
    (run,) = new_runs
    assert run.info.status == "FINISHED"
    assert run.data.params["training.distribution"] == "multi_worker"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2]
    assert client.search_registered_models() == []  # the training pipeline registers none

    # The weights the chief saved are those both workers hold after the last step.
    import keras

    from chest_xray.modeling.trainer import weights_digest

    saved = keras.saving.load_model(data / model_file, compile=False)
    digests = [DIGEST.findall(text) for text in (chief_log, other_log)]
    assert digests == [[weights_digest(saved)], [weights_digest(saved)]]
