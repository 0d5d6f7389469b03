"""Does a model trained on this copy's 224 px TRAIN images see originals differently?

    python scripts/resample_shift.py PACKAGE [--fullres ../shared/data/fullres-sample]
        [--copies ../shared/data/coronahack-dev] [--out docs/ablation/resample_shift.json]

The TRAIN images here are 224 x 224 copies (squashed, JPEG) of originals of 1-3k px; the
official TEST's images are originals. Every model of the project is therefore trained on
images that went original -> 224 (someone else's resize and JPEG) -> the model's size,
and tested on images that go original -> the model's size. ``fullres-sample`` holds 160
of the originals whose 224 copies are in the TRAIN folder: the same picture both ways.

For one package this script

1. says which resampling filter made the copies: each original resized to 224 x 224 by
   every PIL filter, the mean absolute difference from the copy (the JPEG of the copy
   leaves a floor under every filter);
2. scores the 160 pictures three ways through the package's own preprocessing (as
   ``chest-xray predict`` does): the 224 copy (what training saw), the original (what
   TEST gives), and the original with ``preprocessing.via_size: 224`` (the copies' path
   first, ``imaging.via_copy``: bilinear and JPEG quality 75, the filter step 1 finds and
   the quality the copies' quantisation tables are);
3. reports, between the copy and each other way, the mean and largest change of the
   probability, the share of labels that flip at the packaged threshold, the labels'
   accuracy and the share the out-of-distribution guard flags.

Most of the 160 were training images of any model trained on this copy, so the accuracy
is not a held-out figure; the change between two versions of the same picture is the
measurement.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from chest_xray.inference.classifier import Classifier
from chest_xray.inference.packaging import load_classifier
from chest_xray.tools.demo_data import IMAGES_DIR

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
COPY_SIZE = (224, 224)


def pairs(fullres: Path, copies: Path) -> pd.DataFrame:
    """Each original, its 224 copy and its label (1 = pneumonia)."""
    metadata = pd.read_csv(copies / "Chest_xray_Corona_Metadata.csv")
    labels = dict(zip(metadata["X_ray_image_name"], metadata["Label"].str.strip(), strict=True))
    rows = []
    for original in sorted(fullres.iterdir()):
        found = [copies / IMAGES_DIR / split / original.name for split in ("train", "test")]
        copy = next((path for path in found if path.exists()), None)
        if copy is not None and original.name in labels:
            label = int(labels[original.name] != "Normal")
            rows.append({"name": original.name, "original": original, "copy": copy, "y": label})
    return pd.DataFrame(rows)


def grey(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("L")


def filter_distances(table: pd.DataFrame) -> dict[str, float]:
    """Mean absolute difference (0-255) between the copy and each filter's resize."""
    sums = dict.fromkeys(FILTERS, 0.0)
    for original, copy in zip(table["original"], table["copy"], strict=True):
        source, target = grey(original), np.asarray(grey(copy), dtype=np.float32)
        for name, resample in FILTERS.items():
            made = np.asarray(source.resize(COPY_SIZE, resample), dtype=np.float32)
            sums[name] += float(np.abs(made - target).mean())
    return {name: total / len(table) for name, total in sums.items()}


def via_copies(classifier: Classifier) -> Classifier:
    """The same package with ``preprocessing.via_size`` set to the copies' size."""
    settings = classifier.settings.model_copy(update={"via_size": COPY_SIZE})
    return dataclasses.replace(classifier, settings=settings)


def score(classifier: Classifier, payloads: list[tuple[bytes, str]]) -> dict[str, np.ndarray]:
    images = np.stack([classifier.pixels(data, name) for data, name in payloads])
    prob = np.asarray(classifier.probabilities(images), dtype=float)
    labels = classifier.labels(prob)
    return {
        "prob": prob,
        "positive": np.array([label == classifier.settings.classes[1] for label in labels]),
        "ood": np.asarray(classifier.ood_columns(images)["ood_flag"], bool),
    }


def compare(base: dict[str, np.ndarray], other: dict[str, np.ndarray], y: np.ndarray) -> dict:
    change = np.abs(other["prob"] - base["prob"])
    return {
        "mean_abs_change": round(float(change.mean()), 4),
        "max_abs_change": round(float(change.max()), 4),
        "label_flips": round(float((other["positive"] != base["positive"]).mean()), 4),
        "accuracy": round(float((other["positive"] == y.astype(bool)).mean()), 4),
        "ood_flagged": round(float(other["ood"].mean()), 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("package", help="a packaged model's folder or MLflow URI")
    parser.add_argument("--fullres", type=Path, default=SHARED / "fullres-sample")
    parser.add_argument("--copies", type=Path, default=SHARED / "coronahack-dev")
    parser.add_argument("--out", type=Path, default=None, help="result JSON path")
    args = parser.parse_args()
    table = pairs(args.fullres, args.copies)
    if table.empty:
        print(f"no original in {args.fullres} has a copy in {args.copies}", file=sys.stderr)
        return 1
    distances = filter_distances(table)
    nearest = min(distances, key=distances.__getitem__)
    classifier = load_classifier(args.package, trust=True)  # a package made on this machine
    y = table["y"].to_numpy()
    copies = [(p.read_bytes(), p.name) for p in table["copy"]]
    originals = [(p.read_bytes(), p.name) for p in table["original"]]
    scored = {
        "copy": score(classifier, copies),
        "original": score(classifier, originals),
        "original, via_size 224": score(via_copies(classifier), originals),
    }
    result = {
        "package": args.package,
        "images": len(table),
        "pneumonia": int(y.sum()),
        "filter_distance_to_copy": {name: round(d, 2) for name, d in distances.items()},
        "nearest_filter": nearest,
        "against_copy": {way: compare(scored["copy"], s, y) for way, s in scored.items()},
    }
    print(json.dumps(result, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
