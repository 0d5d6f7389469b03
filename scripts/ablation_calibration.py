"""Calibration and threshold stability of the screening's runs (docs/model_quality.md).

Reads the predictions every ``docs/ablation/<config>-seed<seed>.json`` keeps (validation
and the dev test split) and, per run, fits the evaluation's temperature on validation
(``chest_xray.evaluation.calibration``), then reports per configuration the mean +- sd
over seeds of: the temperature; ECE (10 equal-width bins) on validation and on the dev
test split before and after it; the Youden threshold chosen on validation, in the
network's and in calibrated units; and the dev test accuracy at that threshold. No
training: it reads what the runs kept.

    python scripts/ablation_calibration.py [configs ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chest_xray.evaluation.calibration import apply_temperature, calibration_section
from chest_xray.evaluation.metrics import binary_metrics
from chest_xray.evaluation.thresholds import choose_threshold

OUT = Path(__file__).resolve().parents[1] / "docs" / "ablation"


def run_row(record: dict[str, Any]) -> dict[str, object]:
    """One run's calibration figures and its validation-chosen threshold."""
    arrays = {
        split: (
            np.asarray(record["predictions"][split]["y_true"], int),
            np.asarray(record["predictions"][split]["probability"], float),
        )
        for split in ("validation", "test")
    }
    (y_val, p_val), (y_test, p_test) = arrays["validation"], arrays["test"]
    section = calibration_section(y_test, p_test, y_val, p_val)
    threshold = choose_threshold(y_val, p_val, "youden")
    return {
        "config": record["config"],
        "seed": record["seed"],
        "temperature": section["temperature"],
        "val_ece": section["validation"]["ece"],
        "val_ece_after": section["validation_calibrated"]["ece"],
        "test_ece": section["test"]["ece"],
        "test_ece_after": section["test_calibrated"]["ece"],
        "test_brier": section["test"]["brier"],
        "test_brier_after": section["test_calibrated"]["brier"],
        "threshold": threshold,
        "threshold_calibrated": float(apply_temperature(threshold, section["temperature"])),
        "test_acc_at_threshold": binary_metrics(y_test, p_test, threshold)["accuracy"],
    }


def table(configs: list[str]) -> pd.DataFrame:
    rows = []
    for path in sorted(OUT.glob("*-seed*.json")):
        record = json.loads(path.read_text())
        if "predictions" in record and (not configs or record["config"] in configs):
            rows.append(run_row(record))
    return pd.DataFrame(rows)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("configs", nargs="*", help="configurations (default: every run kept)")
    runs = table(parser.parse_args().configs)
    if runs.empty:
        print("no runs with predictions in docs/ablation", file=sys.stderr)
        return 1
    grouped = runs.drop(columns="seed").groupby("config")
    summary = (
        grouped.mean().round(3).astype(str) + " +- " + grouped.std().fillna(0).round(3).astype(str)
    )
    summary.insert(0, "seeds", runs.groupby("config")["seed"].count())
    print(summary.reset_index().to_csv(sep="|", index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
