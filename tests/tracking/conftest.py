"""One tracked project for the whole tracking package: data_processing, then two trainings."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from chest_xray.tools.demo_data import DemoDatasetFacts
from tests.tracking.support import kedro_run, new_project, newest_run, sqlite_uri

TRAINING = ["training", "evaluation"]  # one MLflow run for both pipelines


@dataclass
class Tracked:
    project: Path
    uri: str
    client: MlflowClient
    data_processing: Run
    trainings: dict[int, Run]  # by epochs
    # What each run printed on the standard output (its run summary): "data_processing",
    # then "training_2" and "training_3".
    printed: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="package")
def tracked(
    tmp_path_factory: pytest.TempPathFactory, demo_dataset: DemoDatasetFacts
) -> Iterator[Tracked]:
    """data_processing once, then training+evaluation twice (2 and 3 epochs), all tracked."""
    with pytest.MonkeyPatch.context() as patch:
        project = new_project(tmp_path_factory.mktemp("tracked"))
        patch.chdir(project)
        uri = sqlite_uri(project)
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        client = MlflowClient(uri)
        data = {"raw_root": str(demo_dataset.root), "preprocessing.workers": 1}
        printed = {}
        with _stdout_into(printed, "data_processing"):
            kedro_run(project, params=data, pipeline_names=["data_processing"])
        processing = newest_run(client)
        trainings = {}
        for epochs in (2, 3):
            with _stdout_into(printed, f"training_{epochs}"):
                kedro_run(project, params={"training.epochs": epochs}, pipeline_names=TRAINING)
            trainings[epochs] = newest_run(client)
        yield Tracked(project, uri, client, processing, trainings, printed)


@contextlib.contextmanager
def _stdout_into(printed: dict[str, str], key: str) -> Iterator[None]:
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        printed[key] = buffer.getvalue()
