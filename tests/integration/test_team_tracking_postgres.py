"""Team tracking (README "Team setup"): a real PostgreSQL behind a real `mlflow server`.

The README's commands, run here: a role and a database made with ``psql``/``createdb``,
``mlflow server --backend-store-uri postgresql://...`` with a local artifact
destination, and ``kedro run`` in its own process with MLFLOW_TRACKING_URI pointing
at the server, as a user runs it. Then the run, its params, metrics, model and
registry entry are read back through the MLflow client over HTTP, and straight from
PostgreSQL's tables. Installs happen in scripts/install-postgresql.sh and .ci/run.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from chest_xray.tools.demo_data import DemoDatasetFacts
from tests.integration.postgres import INSTALL_HINT, Cluster, postgres_cluster, server_bin_dir
from tests.processes import free_port, run_logged, start_logged, stop, wait_until
from tests.tracking.support import artifact_paths, experiment_runs, new_project

try:  # SQLAlchemy 2.1 reads postgresql:// as psycopg (3), not psycopg2
    import psycopg
except ImportError:  # the optional extra
    psycopg = None

BIN_DIR = server_bin_dir()
PASSWORD = "team-secret"  # a throw-away cluster on 127.0.0.1
MODEL = "chest-xray"
# MLflow's tables (mlflow/store/tracking/dbmodels, model_registry/dbmodels).
RUNS = "SELECT run_uuid, status FROM runs WHERE experiment_id = %s"
PARAM = "SELECT value FROM params WHERE run_uuid = %s AND key = %s"
METRIC = "SELECT value FROM latest_metrics WHERE run_uuid = %s AND key = %s"
LOGGED_MODEL = "SELECT name, source_run_id FROM logged_models WHERE model_id = %s"
VERSIONS = "SELECT version, run_id FROM model_versions WHERE name = %s"
ALIASES = "SELECT alias, version FROM registered_model_aliases WHERE name = %s"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(BIN_DIR is None, reason=f"no PostgreSQL server here: {INSTALL_HINT}"),
    pytest.mark.skipif(psycopg is None, reason='no psycopg here: pip install -e ".[team]"'),
]


@dataclass(frozen=True)
class TeamServer:
    url: str
    backend_uri: str
    artifacts: Path
    cluster: Cluster


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture
def team_server(tmp_path: Path) -> Iterator[TeamServer]:
    """PostgreSQL with an ``mlflow`` role and database, and an mlflow server on it."""
    assert BIN_DIR is not None
    with postgres_cluster(BIN_DIR) as cluster:
        # As on a Debian server: sudo -u postgres psql -c ...; sudo -u postgres createdb ...
        role = f"CREATE ROLE mlflow LOGIN PASSWORD '{PASSWORD}'"
        cluster.admin("psql", "-v", "ON_ERROR_STOP=1", "-c", role)
        cluster.admin("createdb", "--owner=mlflow", "mlflow")
        backend = f"postgresql://mlflow:{PASSWORD}@127.0.0.1:{cluster.port}/mlflow"
        port, log = free_port(), tmp_path / "mlflow-server.log"
        command = [
            *(sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend),
            *("--artifacts-destination", str(tmp_path / "artifacts")),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        process = start_logged(command, log, env=env)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until(lambda: _healthy(url), process, "mlflow server", log)
            yield TeamServer(url, backend, tmp_path / "artifacts", cluster)
        finally:  # a throw-away server: no need to wait out its graceful shutdown
            stop(process, grace_s=5)


def _query(backend_uri: str, sql: str, *args: object) -> list[tuple]:
    with psycopg.connect(backend_uri) as connection:
        return connection.execute(sql, args).fetchall()


def test_a_kedro_run_lands_in_postgresql_through_the_server(
    team_server: TeamServer, tmp_path: Path, demo_dataset: DemoDatasetFacts
) -> None:
    project = new_project(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env |= {"MLFLOW_TRACKING_URI": team_server.url, "KEDRO_DISABLE_TELEMETRY": "1"}
    params = f"raw_root={demo_dataset.root},training.epochs=1,preprocessing.workers=1"
    command = [sys.executable, "-m", "kedro", "run", "--env=demo", f"--params={params}"]
    run_logged(command, project, env, tmp_path / "kedro-run.log")
    assert not (project / "mlflow.db").exists()  # nothing tracked locally

    # Through the server, over HTTP, as chest-xray-runs and `models:/` URIs read them.
    client = MlflowClient(team_server.url)
    (tracked,) = experiment_runs(client)
    run_id = tracked.info.run_id
    assert tracked.info.status == "FINISHED"
    assert tracked.info.run_name == f"default-{run_id[:8]}"
    assert tracked.data.params["training.epochs"] == "1"
    assert tracked.data.params["preprocessing.image_size"] == "[64, 64]"
    assert 0.0 <= tracked.data.metrics["test_accuracy"] <= 1.0
    assert [m.step for m in client.get_metric_history(run_id, "val_loss")] == [1]
    assert {"metrics/test_metrics.json", "plots/roc_curve.png"} <= artifact_paths(client, run_id)
    (version,) = client.search_model_versions(f"name = '{MODEL}'")
    assert version.run_id == run_id
    # MLflow 3: a logged model is an entity of its own (models:/m-...), made by the run.
    (model,) = client.search_logged_models([tracked.info.experiment_id])
    assert (model.name, model.source_run_id) == ("model", run_id)
    assert version.source == f"models:/{model.model_id}"
    assert client.get_model_version_by_alias(MODEL, "champion").version == version.version

    # The same rows, straight from PostgreSQL's tables.
    db = partial(_query, team_server.backend_uri)
    assert db(RUNS, int(tracked.info.experiment_id)) == [(run_id, "FINISHED")]
    assert db(PARAM, run_id, "training.epochs") == [("1",)]
    test_accuracy = tracked.data.metrics["test_accuracy"]
    assert db(METRIC, run_id, "test_accuracy") == [(pytest.approx(test_accuracy),)]
    assert db(LOGGED_MODEL, model.model_id) == [("model", run_id)]
    assert db(VERSIONS, MODEL) == [(int(version.version), run_id)]
    assert db(ALIASES, MODEL) == [("champion", int(version.version))]

    # The model's files went through the server into its artifact destination.
    stored = {path.name for path in team_server.artifacts.rglob("*") if path.is_file()}
    assert {"MLmodel", "test_metrics.json"} <= stored
