"""Start-up: what a ``kedro run`` that needs no model costs before its first node.

Every ``kedro`` command loads the settings and hooks, registers every pipeline and builds
every dataset of the catalog (kedro-mlflow's ``after_catalog_created`` walks them all).
Until the datasets package imported its classes on first use, that chain imported Keras
and TensorFlow in every command, so a run that stops on a bad parameter, or one that
only prepares data, waited for them and held their memory. This script times two such
runs in a copy of the project on a small demo dataset, each two ways, alternating:

- ``project``: ``kedro run`` as a user types it;
- ``keras first``: the same command in an interpreter that imports Keras before Kedro
  starts, which is what every command paid before (the baseline, in the same run).

The cases: ``bad parameter`` (``training.epochs=-1``: Kedro's validation stops the run
before any node) and ``data again`` (``--pipelines=data_processing`` over data already
prepared: every image is checked and none rewritten). Each figure is the median wall
time and peak RSS (the child's own, ``wait4``) over ``--repeats``.

Usage: python benchmarks/bench_startup.py [--repeats 5] [--n-train 120]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    base_parser,
    check_repeats,
    cpu_flags,
    log_tail,
    machine,
    median,
    project_copy,
    run_in_project,
    table,
    versions,
    write_result,
)

KEDRO = "from kedro.framework.cli import main\nmain()\n"
WAYS = {"project": KEDRO, "keras first": "import keras\n" + KEDRO}
CASES = {
    "bad parameter": ([], ",training.epochs=-1", 1),
    "data again": (["--pipelines=data_processing"], "", 0),
}


def run_once(project: Path, code: str, arguments: list[str], expected: int) -> dict[str, float]:
    """One command in a fresh interpreter: wall seconds and peak RSS in MB."""
    log = project / "bench-startup-child.log"
    seconds, exit_code, peak_rss = run_in_project(
        project, [sys.executable, "-c", code, *arguments], log
    )
    if exit_code != expected:
        sys.exit(
            f"error: {' '.join(arguments)} exited {exit_code}, not {expected}:\n{log_tail(log)}"
        )
    return {"seconds": seconds, "peak_rss_mb": peak_rss / 1024**2}


def kedro_run(raw: Path, extra: list[str], params: str = "") -> list[str]:
    """``kedro run`` arguments on the demo environment, with ``raw`` as the raw data."""
    return ["run", "--env=demo", *extra, f"--params=raw_root={raw}{params}"]


def measure(project: Path, raw: Path, repeats: int) -> dict[str, dict[str, list[dict]]]:
    """Every case, both ways, alternating within each repetition."""
    samples: dict[str, dict[str, list[dict]]] = {case: {w: [] for w in WAYS} for case in CASES}
    for repeat in range(repeats):
        for case, (extra, params, expected) in CASES.items():
            arguments = kedro_run(raw, extra, params)
            for way, code in WAYS.items():
                samples[case][way].append(run_once(project, code, arguments, expected))
        print(f"repetition {repeat + 1}/{repeats} done", flush=True)
    return samples


def summary(samples: dict[str, dict[str, list[dict]]]) -> dict[str, Any]:
    """Medians of each case and way, and the ratios against ``keras first``."""
    figures: dict[str, Any] = {}
    for case, ways in samples.items():
        medians = {
            way: {key: median([s[key] for s in runs]) for key in ("seconds", "peak_rss_mb")}
            for way, runs in ways.items()
        }
        base, new = medians["keras first"], medians["project"]
        figures[case] = medians | {
            "speedup": base["seconds"] / new["seconds"],
            "memory_saved_mb": base["peak_rss_mb"] - new["peak_rss_mb"],
        }
    return figures


def report(figures: dict[str, Any]) -> None:
    rows = [
        [
            case,
            f["project"]["seconds"],
            f["keras first"]["seconds"],
            f"{f['speedup']:.2f}x",
            f["project"]["peak_rss_mb"],
            f["keras first"]["peak_rss_mb"],
        ]
        for case, f in figures.items()
    ]
    header = ["case", "project s", "keras first s", "speed-up", "project MB", "keras first MB"]
    print(table(rows, header))


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=120, help="demo TRAIN images")
    parser.set_defaults(repeats=5)
    args = parser.parse_args()
    check_repeats(args.repeats)
    from chest_xray.tools.demo_data import write_demo_dataset

    with tempfile.TemporaryDirectory(prefix="bench-startup-") as folder:
        work = Path(folder)
        raw = write_demo_dataset(work / "raw", n_train=args.n_train, n_test=30).root
        project = project_copy(work / "project")
        # Prepared once, untimed: "data again" then checks every image and writes none.
        run_once(project, KEDRO, kedro_run(raw, ["--pipelines=data_processing"]), 0)
        samples = measure(project, raw, args.repeats)
    figures = summary(samples)
    report(figures)
    result = {
        "machine": machine(),
        "cpu_flags": cpu_flags(),
        "versions": versions("kedro", "kedro-mlflow", "tensorflow", "keras"),
        "repeats": args.repeats,
        "n_train": args.n_train,
        "figures": figures,
        "samples": samples,
    }
    write_result("startup", result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
