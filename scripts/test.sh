#!/usr/bin/env bash
# Install the project with its dev tools into ./.venv, lint, type-check, and run the tests.
# Extra arguments go to pytest (e.g. -m "not slow").
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
bash scripts/install-chromium.sh || true  # headless chromium for tests/test_viz.py
ruff check src tests
ruff format --check src tests
mypy  # src/, configured in pyproject.toml [tool.mypy]
exec python -m pytest "$@"
