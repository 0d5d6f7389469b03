"""Compare the latest MLflow runs of the experiment in a terminal.

    chest-xray-runs                         # last 10 evaluated runs, best test accuracy first
    chest-xray-runs -n 5 --sort test_auc --csv runs.csv
    python -m chest_xray.tracking.run_comparison --tracking-uri http://mlflow.internal:5000

Runs are printed side by side (one column per run): who they are, the
parameters that differ between them, and their test metrics. ``--csv`` writes
the same table with one row per run. Only runs that logged the ``--sort``
metric are shown unless ``--all`` is given (data-processing and failed runs
have no test metrics).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from chest_xray.tracking.helpers_tmp import (
    DEFAULT_TRACKING_URI,
    TAG_DATA_FINGERPRINT,
    TAG_GIT_COMMIT,
    TAG_GIT_DIRTY,
)

DEFAULT_EXPERIMENT = "chest-xray"
DEFAULT_SORT = "test_accuracy"
METRIC_PREFIX = "test_"
IDENTITY = ["run_name", "run_id", "status", "start_time", "git_commit", "data_fingerprint"]


def latest_runs(
    client: MlflowClient,
    experiment: str,
    n: int,
    require_metric: str | None = None,
    filter_string: str = "",
) -> list[Run]:
    """The ``n`` most recent runs of ``experiment`` (optionally: that logged ``require_metric``)."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise LookupError(f"No MLflow experiment named {experiment!r} at {client.tracking_uri}")
    runs: list[Run] = []
    page_token = None
    while len(runs) < n:
        page = client.search_runs(
            [found.experiment_id],
            filter_string=filter_string,
            max_results=200,
            order_by=["attributes.start_time DESC"],
            page_token=page_token,
        )
        runs += [run for run in page if not require_metric or require_metric in run.data.metrics]
        page_token = page.token
        if not page_token:
            break
    return runs[:n]


def _group_params(params: dict[str, str]) -> set[str]:
    """kedro-mlflow also logs a whole group (``training``) next to its fields: drop it."""
    return {key for key in params if any(other.startswith(f"{key}.") for other in params)}


def _identity(run: Run) -> dict[str, str]:
    tags = run.data.tags
    commit = tags.get(TAG_GIT_COMMIT, "")
    if commit and commit != "unknown":
        commit = commit[:8] + ("+dirty" if tags.get(TAG_GIT_DIRTY) == "true" else "")
    started = datetime.fromtimestamp(run.info.start_time / 1000, tz=timezone.utc)
    return {
        "run_name": run.info.run_name,
        "run_id": run.info.run_id,
        "status": run.info.status,
        "start_time": started.strftime("%Y-%m-%d %H:%M:%S"),
        "git_commit": commit,
        "data_fingerprint": tags.get(TAG_DATA_FINGERPRINT, ""),
    }


def comparison_table(
    runs: Sequence[Run],
    sort: str = DEFAULT_SORT,
    ascending: bool = False,
    all_params: bool = False,
) -> pd.DataFrame:
    """One row per run: identity, differing (or all) parameters, ``test_*`` metrics."""
    params = {run.info.run_id: dict(run.data.params) for run in runs}
    keys = sorted({key for values in params.values() for key in values})
    groups = set().union(*(_group_params(values) for values in params.values()))
    keys = [key for key in keys if key not in groups]
    if not all_params:
        keys = [key for key in keys if len({p.get(key) for p in params.values()}) > 1]
    metrics = sorted(
        {key for run in runs for key in run.data.metrics if key.startswith(METRIC_PREFIX)}
    )
    rows = [
        {
            **_identity(run),
            **{key: params[run.info.run_id].get(key) for key in keys},
            **{key: run.data.metrics.get(key) for key in metrics},
        }
        for run in runs
    ]
    table = pd.DataFrame(rows, columns=[*IDENTITY, *keys, *metrics])
    if sort in table.columns:
        table = table.sort_values(sort, ascending=ascending, na_position="last", kind="stable")
    return table.reset_index(drop=True)


def render(table: pd.DataFrame) -> str:
    """Runs side by side: one column per run, named by the run."""
    if table.empty:
        return "No runs."
    shown = table.set_index("run_name").T.astype(object)
    shown = shown.where(shown.notna(), "-")  # not logged by that run
    with pd.option_context(
        "display.max_rows",
        None,
        "display.max_columns",
        None,
        "display.width",
        shutil.get_terminal_size((160, 40)).columns,
        "display.max_colwidth",
        40,
        "display.float_format",
        "{:.4f}".format,
    ):
        return shown.to_string()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="chest-xray-runs",
        description="Compare the latest MLflow runs: differing parameters and test metrics.",
    )
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI),
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else %(default)s)",
    )
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT)
    parser.add_argument("-n", "--last", type=int, default=10, help="how many runs (newest)")
    parser.add_argument("--sort", default=DEFAULT_SORT, help="metric to sort by (best first)")
    parser.add_argument("--ascending", action="store_true", help="lowest first (e.g. a loss)")
    parser.add_argument("--all", action="store_true", help="also runs without the sort metric")
    parser.add_argument("--all-params", action="store_true", help="not only those that differ")
    parser.add_argument(
        "--filter", default="", help="an MLflow search filter, e.g. \"tags.kedro_env = 'cpu'\""
    )
    parser.add_argument("--csv", type=Path, help="also write the table here (one row per run)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    client = MlflowClient(tracking_uri=args.tracking_uri)
    try:
        runs = latest_runs(
            client,
            args.experiment,
            args.last,
            require_metric=None if args.all else args.sort,
            filter_string=args.filter,
        )
    except LookupError as err:
        print(err, file=sys.stderr)
        return 1
    table = comparison_table(runs, args.sort, args.ascending, args.all_params)
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.csv, index=False)
    try:
        print(render(table), flush=True)
    except BrokenPipeError:  # `chest-xray-runs | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
