"""Test-time augmentation on the screening's own models: does averaging views rank better?

    python scripts/tta_check.py std_aw_224_e30 std_aw_e60 [--raw-root ../shared/data/coronahack-dev]

TTA changes no training, so instead of training every configuration again with
``evaluation.tta`` set, this loads each screening run's packaged model (the ``package``
its ``docs/ablation/<config>-seed<s>.json`` names), decodes the dev split's TEST images
from the raw files as ``chest-xray predict`` does (the package's own preprocessing), and
scores them with every mode of ``modeling/tta.py``: ``none`` (one pass: it must agree with
the run's own test AUC, the check that this is the same model on the same images),
``flip`` (2 views) and ``flip_shift`` (10). AUC is what the screening asks about; the
accuracy at 0.5 is beside it (a threshold chosen on validation without TTA would not fit
averaged probabilities, so none is claimed). Raw network outputs, before the packaged
temperature (monotone: the AUC is the same).

Writes ``docs/ablation/tta/<config>-seed<s>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from chest_xray.inference.packaging import load_classifier
from chest_xray.modeling.tta import TTA, tta_probabilities

REPO = Path(__file__).resolve().parents[1]
RECORDS = REPO / "docs" / "ablation"
DEV_DATA = REPO.parent / "shared" / "data" / "coronahack-dev"
MODES: tuple[TTA, ...] = ("none", "flip", "flip_shift")


def test_images(raw_root: Path) -> tuple[list[Path], np.ndarray]:
    """The dataset's TEST rows: their files and labels (1 = pneumonia)."""
    metadata = pd.read_csv(raw_root / "Chest_xray_Corona_Metadata.csv")
    rows = metadata[metadata["Dataset_type"].str.strip() == "TEST"].sort_values("X_ray_image_name")
    folder = raw_root / "Coronahack-Chest-XRay-Dataset" / "Coronahack-Chest-XRay-Dataset" / "test"
    files = [folder / name for name in rows["X_ray_image_name"]]
    labels = (rows["Label"].str.strip() != "Normal").to_numpy(int)
    return files, labels


def check(record_path: Path, raw_root: Path) -> dict[str, object]:
    record = json.loads(record_path.read_text())
    # The screening's own packages, made on this machine by an earlier checkout
    classifier = load_classifier(str(REPO / record["package"]), trust=True)
    files, y = test_images(raw_root)
    images = np.stack([classifier.pixels(f.read_bytes(), f.name) for f in files])
    result: dict[str, object] = {
        "config": record["config"],
        "seed": record["seed"],
        "package": record["package"],
        "images": len(files),
        "run_test_auc": record["metrics"]["test"]["auc"],
    }
    for mode in MODES:
        start = time.perf_counter()
        prob = tta_probabilities(classifier.model, images, 32, mode)
        result[mode] = {
            "auc": float(roc_auc_score(y, prob)),
            "accuracy_at_0.5": float(((prob >= 0.5).astype(int) == y).mean()),
            "seconds": round(time.perf_counter() - start, 1),
        }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("configs", nargs="+")
    parser.add_argument("--raw-root", type=Path, default=DEV_DATA)
    args = parser.parse_args()
    out = RECORDS / "tta"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for config in args.configs:
        for path in sorted(RECORDS.glob(f"{config}-seed*.json")):
            result = check(path, args.raw_root)
            (out / path.name).write_text(json.dumps(result, indent=2) + "\n")
            rows.append(
                {"config": config, "seed": result["seed"], "run AUC": result["run_test_auc"]}
                | {f"{mode} AUC": result[mode]["auc"] for mode in MODES}  # type: ignore[index]
                | {f"{mode} acc": result[mode]["accuracy_at_0.5"] for mode in MODES}  # type: ignore[index]
            )
    if not rows:
        print("no screening records for these configurations", file=sys.stderr)
        return 1
    table = pd.DataFrame(rows)
    print(table.round(4).to_string(index=False))
    numeric = table.drop(columns="seed").groupby("config")
    print(numeric.mean().round(4).astype(str) + " +- " + numeric.std().round(4).astype(str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
