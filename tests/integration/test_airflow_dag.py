"""Airflow (README "Scheduling with Airflow"): `kedro airflow create` DAGs that Airflow imports.

The official kedro-airflow plugin writes one DAG per registered pipeline, with the
project's template (scripts/airflow_dag_template.j2: one dag_id per pipeline) and
``--group-by=namespace`` (each cross-validation fold one task). Airflow, installed in
its own environment by scripts/install-airflow.sh, then parses them in a DagBag, and
each DAG must hold Kedro's graph: one task per node or namespace, Kedro's dependencies
as its edges, and no in-memory dataset passed between two tasks (each task is its own
``kedro run``, so only persisted datasets travel between them).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from pathlib import Path

import pytest
from kedro.framework.project import pipelines
from kedro.framework.session import KedroSession

from tests.conftest import REPO
from tests.processes import run_logged

AIRFLOW_PYTHON = REPO / ".venv-airflow" / "bin" / "python"
TEMPLATE = REPO / "scripts" / "airflow_dag_template.j2"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (AIRFLOW_PYTHON.parent / "airflow").is_file(),  # the airflow command
        reason="Airflow is not installed in ./.venv-airflow: bash scripts/install-airflow.sh",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("kedro_airflow") is None,
        reason='kedro-airflow is not installed: pip install -e ".[airflow]"',
    ),
]

# Run by Airflow's interpreter: the DAGs it imports, each as {task: [upstream tasks]}.
PARSE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1])
parsed = {
    "errors": {path: str(error) for path, error in bag.import_errors.items()},
    "dags": {
        dag.dag_id: {task.task_id: sorted(task.upstream_task_ids) for task in dag.tasks}
        for dag in bag.dags.values()
    },
}
with open(sys.argv[2], "w") as out:
    json.dump(parsed, out)
"""


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _dag_id(pipeline_name: str) -> str:
    return "chest-xray" + ("" if pipeline_name == "__default__" else f"-{_slug(pipeline_name)}")


def test_airflow_imports_a_dag_for_every_pipeline_with_kedros_graph(
    kedro_project: Path, tmp_path: Path
) -> None:
    dags = tmp_path / "dags"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"KEDRO_DISABLE_TELEMETRY": "1", "AIRFLOW_HOME": str(tmp_path / "airflow")}
    create = [
        *(sys.executable, "-m", "kedro", "airflow", "create", "--all", "--group-by=namespace"),
        *(f"--jinja-file={TEMPLATE}", f"--target-dir={dags}"),
    ]
    run_logged(create, kedro_project, env, tmp_path / "create.log")
    parse = [str(AIRFLOW_PYTHON), "-c", PARSE, str(dags), str(tmp_path / "parsed.json")]
    run_logged(parse, tmp_path, env, tmp_path / "parse.log")
    parsed = json.loads((tmp_path / "parsed.json").read_text())
    assert parsed["errors"] == {}

    # What Kedro says, in a session of the same project and environment (the session
    # also sets the number of cross-validation folds from the configuration).
    with KedroSession.create(project_path=kedro_project) as session:
        catalog = session.load_context().catalog
        from kedro_airflow.grouping import group_memory_nodes  # the optional extra

        registered = dict(pipelines)
        expected, memory_groups = {}, {}
        for name, pipeline in registered.items():
            groups = pipeline.group_nodes_by("namespace")
            expected[_dag_id(name)] = {
                _slug(group.name): sorted(_slug(d) for d in group.dependencies) for group in groups
            }
            task_of = {node: group.name for group in groups for node in group.nodes}
            memory_groups[name] = [
                {task_of[node] for node in group.nodes}
                for group in group_memory_nodes(catalog, pipeline)
            ]
    assert parsed["dags"] == expected
    for name, tasks_per_group in memory_groups.items():
        # Nodes joined by an in-memory dataset run in one task (one `kedro run`).
        assert all(len(tasks) == 1 for tasks in tasks_per_group), name

    if "cross_validation" in registered:
        # Each fold one task, `kedro run --pipelines=cross_validation --namespaces=fold_<i>`,
        # and no fold waits for another: Airflow runs them side by side.
        graph = parsed["dags"]["chest-xray-cross-validation"]
        folds = sorted(task for task in graph if re.fullmatch(r"fold-\d+", task))
        assert len(folds) >= 2
        assert all(not set(graph[fold]) & set(folds) for fold in folds)
        assert any(set(folds) <= set(upstream) for upstream in graph.values())
