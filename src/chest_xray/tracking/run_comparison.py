"""Compare the latest MLflow runs of the experiment in a terminal.

    chest-xray-runs                         # last 10 evaluated runs, best test accuracy first
    chest-xray-runs -n 5 --sort test_auc --csv runs.csv
    python -m chest_xray.tracking.run_comparison --tracking-uri http://mlflow.internal:5000

Runs are printed side by side (one column per run): who they are, the
parameters that differ between them, and their test metrics, each with its
bootstrap interval where the run logged one (``0.9120 [0.8950, 0.9290]``; the
CSV keeps them as ``<metric>_ci_low`` / ``<metric>_ci_high`` columns). ``--csv`` writes
the same table with one row per run. Only runs that logged the ``--sort``
metric are shown unless ``--all`` is given (data-processing and failed runs
have no test metrics).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import mlflow
import pandas as pd

from chest_xray.tracking.identity import TAG_DATA_FINGERPRINT, TAG_GIT_COMMIT, TAG_GIT_DIRTY
from chest_xray.tracking.server_check import DEFAULT_TRACKING_URI
from chest_xray.tracking.uri_credentials import (
    PASSWORD_VARIABLE,
    USERNAME_VARIABLE,
    move_credentials_to_environment,
    redact,
)

DEFAULT_EXPERIMENT = "chest-xray"
DEFAULT_SORT = "test_accuracy"
METRIC_PREFIX = "test_"
_TRACKING_VARIABLES = ("MLFLOW_TRACKING_URI", USERNAME_VARIABLE, PASSWORD_VARIABLE)
IDENTITY = ["run_name", "run_id", "status", "start_time", "git_commit", "data_fingerprint"]


@contextlib.contextmanager
def tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's global tracking URI, which ``mlflow.search_runs`` reads, at ``uri``.

    MLflow mirrors it into ``MLFLOW_TRACKING_URI``: both are put back afterwards,
    so a caller in the same process (the tests) is left as it was; so are the
    ``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` that the user info of an http(s) ``uri``
    is moved to (MLflow reads its credentials there, and prints its URI in errors).
    """
    saved = {name: os.environ.get(name) for name in _TRACKING_VARIABLES}
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(str(move_credentials_to_environment(uri)))
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def latest_runs(
    experiment: str, n: int, require_metric: str | None = None, filter_string: str = ""
) -> pd.DataFrame:
    """The ``n`` most recent runs of ``experiment`` (optionally: that logged ``require_metric``),
    one row per run as ``mlflow.search_runs`` returns them (``params.*``, ``metrics.*``,
    ``tags.*`` columns), from the current tracking URI."""
    if mlflow.get_experiment_by_name(experiment) is None:
        raise LookupError(
            f"No MLflow experiment named {experiment!r} at {redact(mlflow.get_tracking_uri())}"
        )
    filters = [filter_string.strip()] if filter_string.strip() else []
    if require_metric:
        # A comparison only matches runs that have the metric (MLflow has no IS NOT NULL
        # for metrics); its filters combine with AND only.
        filters.append(f"metrics.`{require_metric}` > -1e308")
    return mlflow.search_runs(
        experiment_names=[experiment],
        filter_string=" and ".join(filters),
        order_by=["attributes.start_time DESC"],
        max_results=n,
    )


def _group_params(params: Sequence[str]) -> set[str]:
    """kedro-mlflow also logs a whole group (``training``) next to its fields: drop it."""
    return {key for key in params if any(other.startswith(f"{key}.") for other in params)}


def _column(runs: pd.DataFrame, name: str) -> pd.Series:
    """A column of ``search_runs``' frame; all missing when no run has it (e.g. a tag)."""
    if name in runs.columns:
        return runs[name]
    return pd.Series([None] * len(runs), index=runs.index, dtype=object)


def _short_commit(commit: object, dirty: object) -> str:
    if not isinstance(commit, str) or not commit:
        return ""
    if commit == "unknown":
        return commit
    return commit[:8] + ("+dirty" if dirty == "true" else "")


def comparison_table(
    runs: pd.DataFrame,
    sort: str = DEFAULT_SORT,
    ascending: bool = False,
    all_params: bool = False,
) -> pd.DataFrame:
    """One row per run: identity, differing (or all) parameters, ``test_*`` metrics."""
    params = sorted(c.removeprefix("params.") for c in runs.columns if c.startswith("params."))
    groups = _group_params(params)
    params = [key for key in params if key not in groups]
    if not all_params:
        params = [key for key in params if runs[f"params.{key}"].nunique(dropna=False) > 1]
    metrics = sorted(
        name
        for c in runs.columns
        if (name := c.removeprefix("metrics.")) != c and name.startswith(METRIC_PREFIX)
    )
    commits = _column(runs, f"tags.{TAG_GIT_COMMIT}")
    dirty = _column(runs, f"tags.{TAG_GIT_DIRTY}")
    fingerprint = _column(runs, f"tags.{TAG_DATA_FINGERPRINT}")
    table = pd.DataFrame(
        {
            "run_name": _column(runs, "tags.mlflow.runName"),
            "run_id": _column(runs, "run_id"),
            "status": _column(runs, "status"),
            "start_time": [
                started.strftime("%Y-%m-%d %H:%M:%S") if pd.notna(started) else ""
                for started in _column(runs, "start_time")
            ],
            "git_commit": [_short_commit(c, d) for c, d in zip(commits, dirty, strict=True)],
            "data_fingerprint": fingerprint.fillna(""),
            **{key: runs[f"params.{key}"] for key in params},
            **{key: runs[f"metrics.{key}"] for key in metrics},
        },
        index=runs.index,
        columns=[*IDENTITY, *params, *metrics],
    )
    if sort in table.columns:
        table = table.sort_values(sort, ascending=ascending, na_position="last", kind="stable")
    return table.reset_index(drop=True)


CI_LOW, CI_HIGH = "_ci_low", "_ci_high"
CI_NOTE = "[low, high]: bootstrap interval over the test images (evaluation.bootstrap)"


def with_intervals(shown: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """Rows ``m``, ``m_ci_low``, ``m_ci_high`` (one column per run) become one row ``m``
    reading ``0.9120 [0.8950, 0.9290]``; True when any interval was shown."""
    merged = False
    for name in list(shown.index):
        low, high = f"{name}{CI_LOW}", f"{name}{CI_HIGH}"
        if low not in shown.index or high not in shown.index:
            continue
        shown.loc[name] = pd.Series(
            [
                _value_with_interval(value, lo, hi)
                for value, lo, hi in zip(
                    shown.loc[name], shown.loc[low], shown.loc[high], strict=True
                )
            ],
            index=shown.columns,
            dtype=object,
        )
        shown = shown.drop(index=[low, high])
        merged = True
    return shown, merged


def _value_with_interval(value: object, low: object, high: object) -> object:
    if not isinstance(value, float) or pd.isna(value):
        return value
    if isinstance(low, float) and isinstance(high, float) and pd.notna(low) and pd.notna(high):
        return f"{value:.4f} [{low:.4f}, {high:.4f}]"
    return f"{value:.4f}"


def render(table: pd.DataFrame) -> str:
    """Runs side by side: one column per run, named by the run; a metric with a bootstrap
    interval reads ``value [low, high]``."""
    if table.empty:
        return "No runs."
    shown, merged = with_intervals(table.set_index("run_name").T.astype(object))
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
        text = shown.to_string()
    return f"{text}\n{CI_NOTE}" if merged else text


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="chest-xray-runs",
        description="Compare the latest MLflow runs: differing parameters and test metrics.",
    )
    default_uri = os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)
    parser.add_argument(
        "--tracking-uri",
        default=default_uri,
        help="MLflow tracking URI; user:password@ in an http(s) one is sent as basic auth "
        f"(default: $MLFLOW_TRACKING_URI, else {DEFAULT_TRACKING_URI}; now "
        f"{redact(default_uri)})".replace("%", "%%"),
    )
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT)
    parser.add_argument("-n", "--last", type=int, default=10, help="how many runs (newest)")
    parser.add_argument("--sort", default=DEFAULT_SORT, help="metric to sort by (best first)")
    parser.add_argument("--ascending", action="store_true", help="lowest first (e.g. a loss)")
    parser.add_argument("--all", action="store_true", help="also runs without the sort metric")
    parser.add_argument("--all-params", action="store_true", help="not only those that differ")
    parser.add_argument(
        "--filter", default="", help="an MLflow search filter, e.g. \"tags.env = 'cpu'\""
    )
    parser.add_argument("--csv", type=Path, help="also write the table here (one row per run)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with tracking_uri(args.tracking_uri):
            runs = latest_runs(
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
