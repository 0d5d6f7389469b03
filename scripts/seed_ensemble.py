"""Seed ensembles from the screening's records: the mean probability of a configuration's seeds.

    python scripts/seed_ensemble.py [std_aw_e30 std_aw_224_e30 ...]   (default: every config)

Every ``docs/ablation/<config>-seed<s>.json`` keeps its run's predictions on the dev test
split (the same 600 images in the same order for every seed: checked on the labels), so
the ensemble of a configuration's seeds costs no training: its AUC and accuracy at 0.5
against its members' mean. The seeds differ in initial weights, augmentation draws and
the validation split, so this is the ensemble a user gets from ``training.seed=42,7,13``.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

RECORDS = Path(__file__).resolve().parents[1] / "docs" / "ablation"


def ensembles(configs: list[str]) -> list[dict[str, object]]:
    by_config: dict[str, list[dict]] = defaultdict(list)
    for path in sorted(RECORDS.glob("*-seed*.json")):
        record = json.loads(path.read_text())
        if not configs or record["config"] in configs:
            by_config[record["config"]].append(record)
    rows = []
    for config, records in sorted(by_config.items()):
        if len(records) < 2:
            continue
        labels = [np.asarray(r["predictions"]["test"]["y_true"], int) for r in records]
        if any(not np.array_equal(labels[0], other) for other in labels[1:]):
            raise ValueError(f"{config}: the seeds' test predictions are not in the same order")
        y = labels[0]
        probs = np.stack([np.asarray(r["predictions"]["test"]["probability"]) for r in records])
        mean = probs.mean(axis=0)
        member_auc = [roc_auc_score(y, p) for p in probs]
        rows.append(
            {
                "config": config,
                "seeds": ", ".join(str(r["seed"]) for r in records),
                "members' AUC": f"{np.mean(member_auc):.4f} +- {np.std(member_auc, ddof=1):.4f}",
                "ensemble AUC": round(float(roc_auc_score(y, mean)), 4),
                "members' acc @0.5": round(float(((probs >= 0.5) == y).mean()), 4),
                "ensemble acc @0.5": round(float(((mean >= 0.5) == y).mean()), 4),
            }
        )
    return rows


def main() -> int:
    rows = ensembles(sys.argv[1:])
    if not rows:
        print("no configuration with two seeds or more", file=sys.stderr)
        return 1
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows:
        print("| " + " | ".join(map(str, row.values())) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
