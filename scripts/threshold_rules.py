"""How steady each threshold rule is across seeds, from the screening's records.

    python scripts/threshold_rules.py [std_aw_e60 std_aw_300_e60 ...]   (default: every config)
    python scripts/threshold_rules.py --predictions data/07_model_output   (one run)

Every ``docs/ablation/<config>-seed<s>.json`` keeps its run's validation and dev test
predictions, so each rule of ``evaluation.validation_threshold`` (and the fixed 0.5) can be
applied again without training: the threshold it picks on validation, and accuracy and
specificity on the dev test split at that threshold, as mean +- sd over the seeds. A rule
is steady when its threshold moves little between seeds *and* the accuracy at it does; the
second matters more (a well-ranking model has a wide plateau of accuracy around any
threshold). Only configurations with three seeds or more are reported.

With ``--predictions``, the same for one run from its own ``validation_predictions.csv``
and ``test_predictions.csv`` (the evaluation pipeline's outputs): what every rule would
have scored on that run's test split, e.g. the official TEST, with no new training.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from chest_xray.evaluation.thresholds import ThresholdStrategy, choose_threshold

RECORDS = Path(__file__).resolve().parents[1] / "docs" / "ablation"
RULES: tuple[ThresholdStrategy | float, ...] = ("youden", "equal_error", "accuracy", 0.5)


def _arrays(record: dict, split: str) -> tuple[np.ndarray, np.ndarray]:
    predictions = record["predictions"][split]
    return np.asarray(predictions["y_true"], int), np.asarray(predictions["probability"], float)


def apply_rule(record: dict, rule: ThresholdStrategy | float) -> dict[str, float]:
    """The threshold ``rule`` picks on the record's validation split, and the dev test scores."""
    if isinstance(rule, float):
        threshold = rule
    else:
        threshold = choose_threshold(*_arrays(record, "validation"), rule)
    y, p = _arrays(record, "test")
    called = p >= threshold
    return {
        "threshold": threshold,
        "accuracy": float((called == y.astype(bool)).mean()),
        "specificity": float((~called[y == 0]).mean()),
    }


def _label(rule: ThresholdStrategy | float) -> str:
    return rule if isinstance(rule, str) else f"fixed {rule}"


def _spread(values: list[float], digits: int = 3) -> str:
    return f"{np.mean(values):.{digits}f} +- {np.std(values, ddof=1):.{digits}f}"


def rule_table(configs: list[str], min_seeds: int = 3) -> list[dict[str, str]]:
    """One row per configuration and rule: threshold, dev test accuracy and specificity."""
    by_config: dict[str, list[dict]] = defaultdict(list)
    for path in sorted(RECORDS.glob("*-seed*.json")):
        record = json.loads(path.read_text())
        if "predictions" in record and (not configs or record["config"] in configs):
            by_config[record["config"]].append(record)
    rows = []
    for config, records in sorted(by_config.items()):
        if len(records) < min_seeds:
            continue
        for rule in RULES:
            scores = [apply_rule(record, rule) for record in records]
            thresholds = [s["threshold"] for s in scores]
            rows.append(
                {
                    "config": config,
                    "rule": _label(rule),
                    "threshold": _spread(thresholds),
                    "threshold range": f"{min(thresholds):.2f}-{max(thresholds):.2f}",
                    "dev test acc": _spread([s["accuracy"] for s in scores]),
                    "dev test spec": _spread([s["specificity"] for s in scores]),
                }
            )
    return rows


def run_record(folder: Path) -> dict:
    """A run's prediction tables as a screening record's ``predictions`` section."""
    predictions = {}
    for split in ("validation", "test"):
        path = folder / f"{split}_predictions.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (run the evaluation pipeline first)")
        table = pd.read_csv(path)
        missing = {"y_true", "probability"} - set(table.columns)
        if missing:
            raise ValueError(f"{path}: no column {', '.join(sorted(missing))}")
        predictions[split] = {
            "y_true": table["y_true"].tolist(),
            "probability": table["probability"].tolist(),
        }
    return {"predictions": predictions}


def run_table(folder: Path) -> list[dict[str, str]]:
    """One row per rule for one run: its threshold and the test split's scores at it."""
    record = run_record(folder)
    rows = []
    for rule in RULES:
        score = apply_rule(record, rule)
        rows.append(
            {
                "rule": _label(rule),
                "threshold": f"{score['threshold']:.3f}",
                "test acc": f"{score['accuracy']:.3f}",
                "test spec": f"{score['specificity']:.3f}",
            }
        )
    return rows


def _print(rows: list[dict[str, str]]) -> None:
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows:
        print("| " + " | ".join(row.values()) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("configs", nargs="*", help="screening configurations (default: all)")
    parser.add_argument(
        "--predictions", type=Path, help="a run's data/07_model_output folder instead"
    )
    args = parser.parse_args(argv)
    if args.predictions is not None:
        try:
            rows = run_table(args.predictions)
        except (OSError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    else:
        rows = rule_table(args.configs)
    if not rows:
        print("no configuration with three recorded seeds", file=sys.stderr)
        return 1
    _print(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
