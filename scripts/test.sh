#!/usr/bin/env bash
# Install the project with its dev tools into ./.venv, and what the optional tests need,
# then lint, type-check and run every test. Extra arguments go to pytest (e.g. -m "not slow").
#
# The optional tests' tools install while the project does (each script a quiet no-op when
# its tool is there, and never failing: it says why when it cannot install): Debian's
# headless chromium (tests/test_viz.py) and PostgreSQL server
# (tests/integration/test_team_tracking_postgres.py), one apt-get after the other, and
# Apache Airflow in its own ./.venv-airflow (tests/integration/test_airflow_dag.py). Their
# Python clients (psycopg, kedro-airflow) come with the dev extra. With
# CHEST_XRAY_REQUIRE_ALL_TESTS set, a test skipped for a missing tool fails the run
# (tests/conftest.py), so none is left out unnoticed; only the tests of the real data in
# ../shared/data (marker shared_data) skip where it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

trap 'wait' EXIT  # never leave an install running behind, whatever ends this script
{ bash scripts/install-chromium.sh; bash scripts/install-postgresql.sh; } &
system_packages=$!
bash scripts/install-airflow.sh &
airflow=$!
source scripts/_venv.sh
wait "$system_packages" "$airflow"

ruff check src tests scripts benchmarks
ruff format --check src tests scripts benchmarks
mypy  # src/, scripts/ and benchmarks/, configured in pyproject.toml [tool.mypy]
export CHEST_XRAY_REQUIRE_ALL_TESTS=1
exec python -m pytest "$@"
