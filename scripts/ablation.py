"""Run the generalisation ablation (docs/model_quality.md): one `kedro run` per lever and seed.

Each run is a whole `kedro run --env=cpu` (preprocessing is incremental: only what an
override changes is made again; then training and evaluation) on a complete dataset (default: the
coronahack-dev re-split of the TRAIN images), one lever changed against the CPU baseline,
and its `test_metrics.json` is kept as `docs/ablation/<config>-seed<seed>.json` with the
wall time, the overrides and the CPU flags. Runs are sequential (two trainings on one
machine would time each other), and a config/seed whose JSON exists is not run again.

    python scripts/ablation.py --list
    python scripts/ablation.py baseline writeup_aug --seeds 42 7

With ``--cross-validation``, each config is a CPU-sized cross-validation instead
(``CV_SCALE``: 3 patient-grouped folds of the dev TRAIN images, 96x96, 6 epochs): mean +-
sd over the folds of what each fold's model scores on its held-out patients, and the
ensemble of the fold models on the dev test split; kept as ``docs/ablation/cv/<config>.json``.
A screening at a smaller scale than the recipe, for levers' directions, not their size.

    python scripts/ablation.py --cross-validation cpu cpu_bn_gap
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _common import cpu_flags as cpu_flags_of
from _common import cpu_model
from ablation_configs import COMMON, CONFIGS, CV_CONFIGS, CV_SCALE
from shortcut_check import measure

from chest_xray.inference.packaging import newest_package

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "ablation"
DEV_DATA = REPO.parent / "shared" / "data" / "coronahack-dev"

# The extensions docs/ablation/*.json record (benchmarks record FLAG_PREFIXES).
ABLATION_FLAG_PREFIXES = ("avx", "amx", "fma", "sse4")


def cpu_flags() -> str:
    """``<model>; <flags>``: what every run's wall time was measured on."""
    return f"{cpu_model()}; {' '.join(cpu_flags_of(ABLATION_FLAG_PREFIXES))}"


def run(config: str, seed: int, raw_root: Path, conf: list[str]) -> None:
    out = OUT / f"{config}-seed{seed}.json"
    if out.exists():
        print(f"{out.name} exists: skipped", flush=True)
        return
    params = {"raw_root": str(raw_root), "training.seed": seed, **COMMON, **CONFIGS[config]}
    text = ",".join(f"{key}={value}" for key, value in params.items())
    command = [
        "kedro",
        "run",
        "--env=cpu",  # every pipeline: a preprocessing override remakes the PNGs it changes
        f"--params={text}",
        *conf,
    ]
    print(" ".join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True)
    seconds = time.perf_counter() - start
    metrics = json.loads((REPO / "data/08_reporting/test_metrics.json").read_text())
    predictions = {
        split: pd.read_csv(REPO / f"data/07_model_output/{split}_predictions.csv")[
            ["y_true", "probability"]
        ].to_dict(orient="list")
        for split in ("validation", "test")
    }
    history = json.loads((REPO / "data/08_reporting/training_history.json").read_text())
    package = newest_package(REPO / "data/06_models/servable_model")
    assert package is not None, "the run packaged no model"
    shortcuts = measure(str(package), REPO / "data/03_primary/images/test")
    shortcuts["model"] = str(package.relative_to(REPO))
    record = {
        "config": config,
        "seed": seed,
        "overrides": COMMON | CONFIGS[config],
        "raw_root": str(raw_root),
        "wall_seconds": round(seconds, 1),
        "epochs_run": len(history.get("loss", [])),
        "cpu": cpu_flags(),
        "cores": len(__import__("os").sched_getaffinity(0)),
        "metrics": metrics,
        "predictions": predictions,  # for bootstrap intervals (--report)
        "package": str(package.relative_to(REPO)),
        # Grad-CAM heat on the image border and the top-left (marker) corner, by class
        "shortcuts": shortcuts,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{out.name}: {seconds / 60:.1f} min", flush=True)


def run_cross_validation(config: str, raw_root: Path, conf: list[str]) -> None:
    out = OUT / "cv" / f"{config}.json"
    if out.exists():
        print(f"{out.name} exists: skipped", flush=True)
        return
    overrides = COMMON | CV_SCALE | CV_CONFIGS[config]
    text = ",".join(f"{key}={value}" for key, value in {"raw_root": raw_root, **overrides}.items())
    command = [
        *("kedro", "run", "--env=cpu", "--pipelines=data_processing,cross_validation"),
        *(f"--params={text}", *conf),
    ]
    print(" ".join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True)
    seconds = time.perf_counter() - start
    reports = REPO / "data/08_reporting/cross_validation"
    ensemble = pd.read_csv(
        REPO / "data/07_model_output/cross_validation/ensemble_test_predictions.csv"
    )
    record = {
        "config": config,
        "overrides": overrides,
        "raw_root": str(raw_root),
        "wall_seconds": round(seconds, 1),
        "cpu": cpu_flags(),
        "cores": len(__import__("os").sched_getaffinity(0)),
        "summary": json.loads((reports / "summary.json").read_text()),
        "ensemble": json.loads((reports / "ensemble_test_metrics.json").read_text()),
        "ensemble_predictions": ensemble[["y_true", "probability"]].to_dict(orient="list"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{out.name}: {seconds / 60:.1f} min", flush=True)


def cross_validation_report() -> str:
    """Markdown: per config, the folds' mean +- sd and the fold ensemble on dev test."""

    def spread(summary: dict, metric: str) -> str:
        s = summary["statistics"].get(metric)
        return "-" if s is None else f"{s['mean']:.3f} +- {s['sd']:.3f}"

    def fold_aucs(summary: dict) -> list[float]:
        return [summary["per_fold"][fold]["test_auc"] for fold in sorted(summary["per_fold"])]

    records = [json.loads(path.read_text()) for path in sorted((OUT / "cv").glob("*.json"))]
    baseline = next((r for r in records if r["config"] == "cpu"), None)
    rows = []
    for record in records:
        summary, ensemble = record["summary"], record["ensemble"]
        # The same folds and seeds as the baseline: the per-fold difference is paired.
        paired = (
            np.subtract(fold_aucs(summary), fold_aucs(baseline["summary"]))
            if baseline is not None and record is not baseline
            else None
        )
        test = ensemble["test"]
        fixed, tuned = test["at_fixed_threshold"], test["at_validation_threshold"] or {}
        y = np.asarray(record["ensemble_predictions"]["y_true"], int)
        p = np.asarray(record["ensemble_predictions"]["probability"], float)
        low, high = bootstrap_interval(y, p, fixed["threshold"])
        members = ensemble["ensemble"].get("member_test_auc") or []
        rows.append(
            {
                "config": record["config"],
                "folds: AUC": spread(summary, "test_auc"),
                "folds: balanced acc": spread(summary, "test_balanced_accuracy"),
                "folds: specificity": spread(summary, "test_specificity"),
                "folds: tuned acc": spread(summary, "test_tuned_accuracy"),
                "folds: AUC - cpu's, paired [min, max]": (
                    "-"
                    if paired is None
                    else f"{paired.mean():+.3f} [{paired.min():+.3f}, {paired.max():+.3f}]"
                ),
                "pooled OOF AUC": round(summary["pooled_out_of_fold"]["auc"], 3),
                "ensemble: test acc [95% CI]": f"{fixed['accuracy']:.3f} [{low:.3f}, {high:.3f}]",
                "ensemble: spec": round(fixed["specificity"], 3),
                "ensemble: AUC": round(test["auc"], 3),
                "members' AUC": ", ".join(f"{a:.3f}" for a in members),
                "ensemble: tuned acc / spec": (
                    f"{tuned['accuracy']:.3f} / {tuned['specificity']:.3f}" if tuned else "-"
                ),
                "minutes": round(record["wall_seconds"] / 60, 1),
            }
        )
    return markdown(pd.DataFrame(rows)) if rows else "no cross-validation runs yet"


def bootstrap_interval(
    y: np.ndarray, p: np.ndarray, threshold: float, n: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95% percentile interval of the accuracy at ``threshold``, images resampled."""
    rng = np.random.default_rng(seed)
    correct = (p >= threshold).astype(int) == y
    draws = rng.integers(0, len(y), (n, len(y)))
    accuracies = correct[draws].mean(axis=1)
    return float(np.percentile(accuracies, 2.5)), float(np.percentile(accuracies, 97.5))


def markdown(table: pd.DataFrame) -> str:
    """A pipe table (pandas' to_markdown needs tabulate, which the project does not)."""
    lines = ["| " + " | ".join(map(str, table.columns)) + " |"]
    lines.append("|" + "---|" * len(table.columns))
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def report() -> str:
    """Markdown: one row per run, then mean +- sd per config over its seeds."""
    rows = []
    for path in sorted(OUT.glob("*.json")):
        record = json.loads(path.read_text())
        metrics, predictions = record["metrics"], record["predictions"]
        test, validation = metrics["test"], metrics["validation"]
        fixed, tuned = test["at_fixed_threshold"], test["at_validation_threshold"] or {}
        y = np.asarray(predictions["test"]["y_true"], int)
        p = np.asarray(predictions["test"]["probability"], float)
        low, high = bootstrap_interval(y, p, fixed["threshold"])
        rows.append(
            {
                "config": record["config"],
                "seed": record["seed"],
                "val_auc": validation["auc"],
                "val_bal_acc": validation["at_fixed_threshold"]["balanced_accuracy"],
                "test_acc": fixed["accuracy"],
                "test_acc_ci": f"{low:.3f}-{high:.3f}",
                "test_bal_acc": fixed["balanced_accuracy"],
                "test_spec": fixed["specificity"],
                "test_sens": fixed["sensitivity"],
                "test_auc": test["auc"],
                "tuned_acc": tuned.get("accuracy"),
                "tuned_spec": tuned.get("specificity"),
                "tuned_threshold": tuned.get("threshold"),
                "corner_heat_pneumonia": (record.get("shortcuts") or {})
                .get("pneumonia", {})
                .get("corner_share"),
                "epochs": record["epochs_run"],
                "minutes": record["wall_seconds"] / 60,
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return "no runs yet"
    numeric = table.drop(columns=["seed", "test_acc_ci"]).groupby("config")
    summary = (
        numeric.mean().round(3).astype(str) + " +- " + numeric.std().fillna(0).round(3).astype(str)
    )
    summary.insert(0, "seeds", table.groupby("config")["seed"].count())
    return (
        "Per run:\n\n"
        + markdown(table.round(3))
        + "\n\nMean +- sd over seeds:\n\n"
        + markdown(summary.reset_index())
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("configs", nargs="*", help="names from --list (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--raw-root", type=Path, default=DEV_DATA)
    parser.add_argument(
        "--conf-source",
        help="another conf/ folder (e.g. a snapshot, with PYTHONPATH=<snapshot>/src, so that "
        "editing the project does not change runs under way)",
    )
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--report", action="store_true", help="print the tables and stop")
    parser.add_argument(
        "--cross-validation",
        action="store_true",
        help="CV_CONFIGS as CPU-sized cross-validations (CV_SCALE) instead of single runs",
    )
    args = parser.parse_args()
    configs = CV_CONFIGS if args.cross_validation else CONFIGS
    if args.report:
        print(cross_validation_report() if args.cross_validation else report())
        return 0
    if args.list:
        for name, overrides in configs.items():
            print(f"{name}: {overrides or '(conf/cpu)'}")
        return 0
    if not (args.raw_root / "Chest_xray_Corona_Metadata.csv").exists():
        print(f"no dataset at {args.raw_root}", file=sys.stderr)
        return 1
    conf = [f"--conf-source={args.conf_source}"] if args.conf_source else []
    if args.cross_validation:  # each run makes its own (smaller) PNGs
        for config in args.configs or list(CV_CONFIGS):
            run_cross_validation(config, args.raw_root, conf)
        return 0
    processing = ["kedro", "run", "--env=cpu", "--pipelines=data_processing"]
    subprocess.run([*processing, f"--params=raw_root={args.raw_root}", *conf], cwd=REPO, check=True)
    for seed in args.seeds:
        for config in args.configs or list(CONFIGS):
            run(config, seed, args.raw_root, conf)
    return 0


if __name__ == "__main__":
    sys.exit(main())
