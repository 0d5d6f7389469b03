# Sourced by run.sh and test.sh: create ./.venv once and install the project into it.
set -euo pipefail
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"
export PATH="$PWD/.venv/bin:$PATH"
export KEDRO_DISABLE_TELEMETRY=1
export TF_CPP_MIN_LOG_LEVEL=2
