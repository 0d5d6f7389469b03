"""Shared fixtures: a generated Kaggle-layout dataset and a throw-away Kedro project."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The packages tests make are recorded as trusted (inference/trust.py) in a record of the
# session's own, never in the user's; runs in subprocesses inherit it.
os.environ.setdefault(
    "CHEST_XRAY_TRUSTED_PACKAGES",
    str(Path(tempfile.mkdtemp(prefix="chest-xray-trust-")) / "trusted_packages.json"),
)

# Two UserWarnings that MLflow gives once per process, while modules are imported, about
# classes that are not this project's: its own mlflow/types/responses.py ("Any type hint
# is inferred as AnyType") and kedro-mlflow's KedroPipelineModel, a PythonModel whose
# predict has no type hints ("Add type hints to the `predict` method"), defined when Kedro
# loads the plugin. MLflow sets its own "once" filter around them, so pytest's
# filterwarnings cannot hide them; imported here, under a record, they are spent before
# any test runs. The project's own PythonModel (ChestXrayModel) is typed and warns nothing.
with warnings.catch_warnings(record=True):
    import kedro_mlflow.mlflow  # noqa: F401
    import mlflow.pyfunc  # noqa: F401

from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from chest_xray.tools.demo_data import DemoDatasetFacts, write_demo_dataset

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory: pytest.TempPathFactory) -> DemoDatasetFacts:
    """One synthetic Kaggle-layout dataset for the whole session (read only!)."""
    return write_demo_dataset(tmp_path_factory.mktemp("raw") / "coronahack", seed=0)


@pytest.fixture
def kedro_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of this project's configuration in an empty folder, as the cwd.

    Runs write data/, mlflow.db and mlruns/ there, never into the repository.
    """
    project = tmp_path / "project"
    copy_project_files(project)
    monkeypatch.chdir(project)
    # Absolute: MLflow caches one store per URI string for the whole process.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project}/mlflow.db")
    bootstrap_project(project)
    return project


def copy_project_files(project: Path) -> Path:
    """This project's conf/ (without local/) and pyproject.toml in ``project``: a throw-away
    Kedro project for a real run (``src/`` is empty: the package itself is installed)."""
    shutil.copytree(REPO / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    (project / "src").mkdir()  # bootstrap_project wants it
    shutil.copy(REPO / "pyproject.toml", project / "pyproject.toml")
    return project


@contextlib.contextmanager
def entered_project(root: Path) -> Iterator[Path]:
    """A throw-away project in ``root`` (``copy_project_files``) as the working directory,
    with its own MLflow store and Kedro bootstrapped on it, for a fixture wider than a test."""
    copy_project_files(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        # Absolute: MLflow caches one store per URI string for the whole process.
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
        bootstrap_project(root)
        yield root


RunKedro = Callable[..., dict[str, Any]]


@pytest.fixture
def run_kedro(kedro_project: Path) -> Iterator[RunKedro]:
    """Run pipelines in ``kedro_project`` as ``kedro run`` would, through a KedroSession.

    ``runtime_params`` take dotted keys like ``--params``: ``{"split.seed": 7}``.
    """

    def run(
        env: str = "demo", runtime_params: dict[str, Any] | None = None, **run_args: Any
    ) -> dict[str, Any]:
        with KedroSession.create(
            project_path=kedro_project, env=env, runtime_params=nest(runtime_params or {})
        ) as session:
            return session.run(**run_args)

    yield run


def nest(dotted: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``, as ``kedro run --params`` parses them."""
    nested: dict[str, Any] = {}
    for key, value in dotted.items():
        *parents, leaf = key.split(".")
        node = nested
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return nested


# ``bash scripts/test.sh`` sets this: it has installed what every optional test needs
# (chromium, PostgreSQL, Airflow), so a test skipped for a missing tool means that an
# install failed, and the run fails, naming it, instead of passing with the test left out.
# Tests of the real data (``shared_data``: ../shared/data, absent on a fresh machine) may
# still skip.
REQUIRE_ALL_ENV = "CHEST_XRAY_REQUIRE_ALL_TESTS"
_SKIPPED: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "shared_data" not in report.keywords and os.environ.get(REQUIRE_ALL_ENV):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        _SKIPPED.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _SKIPPED and exitstatus == pytest.ExitCode.OK:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"{REQUIRE_ALL_ENV} is set (scripts/test.sh) but {len(_SKIPPED)} test(s) "
                "were skipped; see the install messages above:",
                red=True,
            )
            for line in _SKIPPED:
                reporter.write_line(f"  {line}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
