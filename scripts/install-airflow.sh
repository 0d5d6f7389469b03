#!/usr/bin/env bash
# Install Apache Airflow into its own environment, ./.venv-airflow (git-ignored), for
# tests/integration/test_airflow_dag.py: Airflow parses (DagBag) the DAGs that
# `kedro airflow create` writes. It is kept apart from ./.venv because Airflow pins
# many packages (beside the project pip picks an older fastapi than the project's).
# The generated DAG files import only airflow.sdk and kedro at parse time (the project
# package is imported when a task runs), so this environment holds Airflow and Kedro.
# Quiet and idempotent; never fails the caller: on failure it says why (the test skips).
set -uo pipefail
cd "$(dirname "$0")/.."

venv=.venv-airflow
requirements=("apache-airflow>=3.2,<4" "kedro>=1.7,<2")  # kedro: as pyproject.toml

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import airflow.sdk, kedro" 2>/dev/null; then
  exit 0
fi
echo "install-airflow: installing Apache Airflow into $venv (about a minute) ..." >&2
log=$(mktemp)
start=$SECONDS
if { python3 -m venv "$venv" \
  && "$venv/bin/python" -m pip install --quiet --upgrade pip \
  && "$venv/bin/python" -m pip install --quiet "${requirements[@]}"; } >"$log" 2>&1 \
  && "$venv/bin/python" -c "import airflow.sdk, kedro" 2>>"$log"; then
  echo "install-airflow: $("$venv/bin/airflow" version 2>/dev/null | tail -n 1) installed" \
    "in $((SECONDS - start)) s." >&2
else
  grep -v "^WARNING: Location" "$log" | tail -n 5 >&2
  echo "install-airflow: could not install Airflow into $venv" \
    "(the Airflow DAG test will be skipped)." >&2
fi
rm -f "$log"
exit 0
