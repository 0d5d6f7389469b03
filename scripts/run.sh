#!/usr/bin/env bash
# Install the project into ./.venv and run both pipelines end to end.
#
# With the Kaggle data under data/01_raw/coronahack (or raw_root set in
# conf/local/globals.yml) it runs the real data in the environment named by
# CHEST_XRAY_ENV: default "cpu" (small configuration, minutes per epoch) on a
# machine without an NVIDIA GPU, "local" (the full recipe) with one.
# Without real data it writes the synthetic demo dataset and runs --env=demo
# (a few minutes on 2 CPU cores). Extra arguments go to `kedro run`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh

if [ -f data/01_raw/coronahack/Chest_xray_Corona_Metadata.csv ] || [ -f conf/local/globals.yml ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    env="${CHEST_XRAY_ENV:-local}"
  else
    env="${CHEST_XRAY_ENV:-cpu}"
  fi
else
  env=demo
  demo=data/01_raw/demo-coronahack
  if [ ! -f "$demo/Chest_xray_Corona_Metadata.csv" ]; then
    chest-xray-demo-data "$demo" --n-train 600 --n-test 150
  fi
fi
echo "kedro run --env=$env $*"
exec kedro run --env="$env" "$@"
