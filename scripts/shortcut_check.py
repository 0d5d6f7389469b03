"""How much of a model's Grad-CAM evidence sits on the image border (markers, text, edges).

    python scripts/shortcut_check.py [--model PACKAGE] [--images data/03_primary/images/test]

For each preprocessed test image (the PNGs the model was evaluated on), the share of its
heat map's mass in the outer band (``--band`` of the side, 10% by default) and in the
top-left corner square, averaged by predicted class; on a uniform map the band holds
1 - (1 - 2 * band)^2 of the mass (36% for 10%) and the corner ``band^2`` (1%). A model
that reads the laterality letter or the hospital's text puts far more there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from chest_xray.evaluation.gradcam import gradcam_with_probabilities
from chest_xray.inference.packaging import load_classifier, newest_package


def measure(model: str, images: str | Path, band: float = 0.1) -> dict[str, Any]:
    """Heat shares in the border band and the top-left corner, by predicted class."""
    classifier = load_classifier(model)
    files = sorted(Path(images).glob("*.png"))
    if not files:
        raise FileNotFoundError(f"no PNG under {images}")
    pixels = np.stack([np.asarray(Image.open(f))[..., None] for f in files])
    maps, prob = gradcam_with_probabilities(classifier.model, pixels, batch_size=32)
    height, width = maps.shape[1:]
    dy, dx = round(band * height), round(band * width)
    inner = np.zeros((height, width), bool)
    inner[dy : height - dy, dx : width - dx] = True
    total = maps.sum(axis=(1, 2)) + 1e-12
    in_band = maps[:, ~inner].sum(axis=1) / total
    corner = maps[:, :dy, :dx].sum(axis=(1, 2)) / total
    positive = prob >= 0.5
    result: dict[str, object] = {
        "model": model,
        "images": len(files),
        "band": band,
        "uniform_band": 1 - (1 - 2 * band) ** 2,
        "uniform_corner": band**2,
    }
    for name, chosen in (("pneumonia", positive), ("normal", ~positive)):
        if chosen.any():
            result[name] = {
                "n": int(chosen.sum()),
                "band_share": float(in_band[chosen].mean()),
                "corner_share": float(corner[chosen].mean()),
                "corner_over_10pct": float((corner[chosen] > 0.1).mean()),
            }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--model", help="a package folder or MLflow URI (default: the newest package)"
    )
    parser.add_argument("--images", default="data/03_primary/images/test")
    parser.add_argument("--band", type=float, default=0.1)
    args = parser.parse_args()
    model = args.model or str(newest_package("data/06_models/servable_model"))
    try:
        result = measure(model, args.images, args.band)
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"model {model}; {result['images']} images; band {args.band:.0%} of each side")
    print(f"uniform heat: band {result['uniform_band']:.1%}, top-left corner {args.band**2:.1%}")
    for name in ("pneumonia", "normal"):
        if name in result:
            part = result[name]
            print(
                f"predicted {name.upper():>9} (n={part['n']:3d}): band {part['band_share']:.1%}, "
                f"top-left corner {part['corner_share']:.1%}, images with > 10% of their "
                f"heat in that corner: {part['corner_over_10pct']:.1%}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
