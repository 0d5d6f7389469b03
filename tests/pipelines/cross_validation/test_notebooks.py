"""The notebooks executed: notebooks/*.ipynb run top to bottom in a Jupyter kernel on the
project of this package (data_processing and a 3-fold cross_validation on demo data), as a
researcher opens them: from the project's notebooks/ folder, the environment from
KEDRO_ENV, the MLflow store the project's default. They are committed without outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

from tests.conftest import REPO
from tests.pipelines.cross_validation.conftest import FOLDS, Project

NOTEBOOKS = REPO / "notebooks"
EXPLORE, COMPARE = "01_explore_dataset.ipynb", "02_compare_runs.ipynb"
CV = Path("data", "08_reporting", "cross_validation")

# What each notebook computed, read from its kernel after its last cell (a JSON line).
PROBES = {
    EXPLORE: "{'env': context.env, 'images': len(manifest), 'dropped': len(dropped), "
    "'classes': sorted(counts.index), 'splits': list(counts.columns)}",
    COMPARE: "{'folds': list(folds['fold']), 'cv_run_id': cv_run_id, "
    "'curves': list(trained['run_id']), 'fold_columns': interval}",
}


def test_every_notebook_is_committed_without_outputs() -> None:
    assert sorted(path.name for path in NOTEBOOKS.glob("*.ipynb")) == sorted(PROBES)
    for name in PROBES:
        notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(notebook)
        assert notebook.metadata.kernelspec.name == "python3"
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [], f"{name}: a cell has outputs: {cell.source[:60]!r}"
                assert cell.execution_count is None, f"{name}: {cell.source[:60]!r}"


def execute(project: Project, name: str) -> tuple[Any, dict[str, Any]]:
    """Run notebook ``name`` from ``<project>/notebooks``; any cell error fails the test.

    The kernel gets KEDRO_ENV=demo (the environment the project ran in) and no
    MLFLOW_TRACKING_URI: the notebook must find the project's own store
    (``sqlite:///mlflow.db`` in the project root, conf/base/mlflow.yml) by itself.
    """
    folder = project.path("notebooks")
    folder.mkdir(exist_ok=True)
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    notebook.cells.append(new_code_cell(f"import json\nprint(json.dumps({PROBES[name]}))"))
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    env["KEDRO_ENV"] = "demo"
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    )
    client.execute(env=env)  # CellExecutionError (with the cell and traceback) on any error
    probe = next(out for out in notebook.cells[-1].outputs if out.get("name") == "stdout")
    return notebook, json.loads(probe["text"].strip().splitlines()[-1])


def assert_every_plotting_cell_drew_a_figure(notebook: Any) -> None:
    plotting = [cell for cell in notebook.cells if "plt.show()" in cell.get("source", "")]
    assert plotting
    for cell in plotting:
        images = [out for out in cell.outputs if "image/png" in out.get("data", {})]
        assert len(images) == 1, cell.source[:80]


@pytest.mark.slow
def test_the_dataset_notebook_explores_the_project_s_data(project: Project) -> None:
    notebook, seen = execute(project, EXPLORE)

    manifest = pd.read_csv(project.path("data", "03_primary", "split_manifest.csv"))
    dropped = pd.read_csv(project.path("data", "08_reporting", "dropped_items.csv"))
    assert seen["env"] == "demo"
    assert seen["images"] == len(manifest)
    assert seen["classes"] == sorted(manifest["label"].unique())
    assert seen["splits"] == ["train", "validation", "test"]
    assert seen["dropped"] == len(dropped) > 0  # the demo data has unlabelled files
    assert_every_plotting_cell_drew_a_figure(notebook)  # balance, sizes, gallery
    assert not project.path("notebooks", "mlflow.db").exists()


@pytest.mark.slow
def test_the_runs_notebook_compares_the_project_s_runs_and_folds(project: Project) -> None:
    notebook, seen = execute(project, COMPARE)

    runs = project.runs()
    cv_parents = runs[runs["metrics.cv_pooled_auc"].notna()]
    assert seen["cv_run_id"] == cv_parents.sort_values("start_time")["run_id"].iloc[-1]
    assert seen["folds"] == [f"fold_{i}" for i in range(1, FOLDS + 1)]
    trained = runs[runs["metrics.val_loss"].notna()].sort_values("start_time", ascending=False)
    assert seen["curves"] == list(trained["run_id"].head(6))  # the newest runs that trained
    assert len(seen["curves"]) >= FOLDS
    # Each fold's test metric with its bootstrap interval where the evaluation logged one.
    table = pd.read_csv(project.path(*CV.parts, "fold_metrics.csv"))
    for metric in ("test_accuracy", "test_auc"):
        assert metric in seen["fold_columns"]
        for bound in (f"{metric}_ci_low", f"{metric}_ci_high"):
            assert (bound in seen["fold_columns"]) == (bound in table.columns)
    assert_every_plotting_cell_drew_a_figure(notebook)  # learning curves, folds
    assert not project.path("notebooks", "mlflow.db").exists()
    assert not project.path("notebooks", "mlruns").exists()
