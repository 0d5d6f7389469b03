"""Helpers for the tracking tests: throw-away projects, in-process `kedro run`, run read-back.

Each project gets its own absolute ``sqlite:////<tmp>/mlflow.db`` through
MLFLOW_TRACKING_URI: MLflow caches a store per URI string for the life of the
process, so the relative default would keep writing to the first project's
database.
"""

from __future__ import annotations

import shutil
import socket
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from mlflow.data.pandas_dataset import from_pandas
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from tests.conftest import copy_project_files, nest

EXPERIMENT = "chest-xray"
MANIFEST = Path("data/03_primary/split_manifest.csv")


def new_project(root: Path, data_from: Path | None = None) -> Path:
    """A throw-away copy of the project's conf (as ``kedro_project``), optionally with data."""
    project = root / "project"
    copy_project_files(project)
    if data_from is not None:
        shutil.copytree(data_from / "data", project / "data")
    bootstrap_project(project)
    return project


def sqlite_uri(project: Path) -> str:
    return f"sqlite:///{project / 'mlflow.db'}"


def kedro_run(project: Path, env: str = "demo", params: dict | None = None, **run_args: Any):
    """``kedro run`` in-process (the cwd must be ``project``)."""
    with KedroSession.create(
        project_path=project, env=env, runtime_params=nest(params or {})
    ) as session:
        return session.run(**run_args)


def experiment_runs(client: MlflowClient) -> list[Run]:
    """Every run of the experiment, newest first."""
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    return list(
        client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
    )


def newest_run(client: MlflowClient) -> Run:
    return experiment_runs(client)[0]


def artifact_paths(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def read_artifact(client: MlflowClient, run_id: str, path: str, tmp: Path) -> bytes:
    return Path(client.download_artifacts(run_id, path, str(tmp))).read_bytes()


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mlflow_digest(frame: pd.DataFrame) -> str:
    """MLflow's own digest of a data frame (what a dataset input and data_fingerprint hold)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's use of a pandas API that pandas 4 changes
        return from_pandas(frame).digest
