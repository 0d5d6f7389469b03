"""The project the cross-validation tests (and the notebook tests) share: data_processing and
a 3-fold cross_validation run once on demo data, with its MLflow store."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from kedro.framework.project import pipelines
from kedro.framework.session import KedroSession

from chest_xray.pipelines import fold_count
from chest_xray.tools.demo_data import write_demo_dataset
from tests.conftest import entered_project, nest

FOLDS = 3


class Project:
    """A throw-away project (as tests/conftest.py's kedro_project) shared by this module."""

    def __init__(self, root: Path, raw: Path) -> None:
        self.root, self.raw = root, raw
        self.printed: list[str] = []  # each run's standard output (its run summary)

    def run(self, pipeline_names: list[str], **run_args: object) -> None:
        runtime = nest(
            {
                "raw_root": str(self.raw),
                "preprocessing.workers": 1,
                "training.epochs": 1,
                "cross_validation.folds": FOLDS,
            }
        )
        out = io.StringIO()
        try:
            with (
                contextlib.redirect_stdout(out),
                KedroSession.create(
                    project_path=self.root, env="demo", runtime_params=runtime
                ) as session,
            ):
                session.run(pipeline_names=pipeline_names, **run_args)
        finally:
            self.printed.append(out.getvalue())

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def runs(self) -> pd.DataFrame:
        import mlflow

        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
        return mlflow.search_runs(search_all_experiments=True, order_by=["start_time ASC"])


@pytest.fixture(scope="package")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """data_processing + cross_validation run once: 240 demo images, 3 folds of 1 epoch."""
    root = tmp_path_factory.mktemp("project")
    raw = write_demo_dataset(tmp_path_factory.mktemp("raw") / "coronahack", n_train=240, seed=1)
    with entered_project(root):
        built = Project(root, raw.root)
        built.run(["data_processing", "cross_validation"])
        yield built
    fold_count.reset()  # later tests build the pipelines outside a session: the default
    pipelines.configure("chest_xray.pipeline_registry")
