"""How steady each threshold rule is across seeds, from the screening's records.

    python scripts/threshold_rules.py [std_aw_e60 std_aw_300_e60 ...]   (default: every config)

Every ``docs/ablation/<config>-seed<s>.json`` keeps its run's validation and dev test
predictions, so each rule of ``evaluation.validation_threshold`` (and the fixed 0.5) can be
applied again without training: the threshold it picks on validation, and accuracy and
specificity on the dev test split at that threshold, as mean +- sd over the seeds. A rule
is steady when its threshold moves little between seeds *and* the accuracy at it does; the
second matters more (a well-ranking model has a wide plateau of accuracy around any
threshold). Only configurations with three seeds or more are reported.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

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
                    "rule": str(rule) if isinstance(rule, str) else f"fixed {rule}",
                    "threshold": _spread(thresholds),
                    "threshold range": f"{min(thresholds):.2f}-{max(thresholds):.2f}",
                    "dev test acc": _spread([s["accuracy"] for s in scores]),
                    "dev test spec": _spread([s["specificity"] for s in scores]),
                }
            )
    return rows


def main() -> int:
    rows = rule_table(sys.argv[1:])
    if not rows:
        print("no configuration with three recorded seeds", file=sys.stderr)
        return 1
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows:
        print("| " + " | ".join(row.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
