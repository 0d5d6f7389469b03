"""How well the out-of-distribution guard tells frontal chest X-rays from everything else.

    python scripts/ood_check.py [--data /work/shared/data/coronahack-dev] [--size 300 300]

Fits the guard (``chest_xray.inference.ood``) on the dataset's TRAIN images (a seeded
80%; the other 20% set the threshold, as validation does in the pipeline), then reports
the false alarms on its TEST images (real chest X-rays) and the detection of stand-ins
made here: the photographs scikit-image ships, noise, blank and gradient images, text,
hand-like shapes, and TEST X-rays inverted, rotated 90 degrees or cropped to a corner.
Every image goes through the inference preprocessing (``data.imaging.prepare``), as
``chest-xray predict`` would see it. No network is used or trained.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from chest_xray.data.imaging import OutputSettings, prepare
from chest_xray.inference.ood import fit_guard

IMAGES = Path("Coronahack-Chest-XRay-Dataset", "Coronahack-Chest-XRay-Dataset")
PHOTOS = [
    *("astronaut", "brick", "camera", "cat", "cell", "checkerboard", "chelsea", "clock"),
    *("coffee", "coins", "colorwheel", "grass", "gravel", "horse", "hubble_deep_field"),
    *("immunohistochemistry", "logo", "microaneurysms", "moon", "page", "retina", "rocket"),
    *("shepp_logan_phantom", "text", "binary_blobs"),
]


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def preprocessed(files: list[Path], settings: OutputSettings) -> list[np.ndarray]:
    def one(file: Path) -> np.ndarray:
        return np.asarray(prepare(file.read_bytes(), file.name, settings)[0])

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(one, files))


def photographs() -> Iterator[bytes]:
    import skimage.data

    for name in PHOTOS:
        image = np.asarray(getattr(skimage.data, name)())
        if image.dtype == bool:
            image = image.astype(np.uint8) * 255
        if image.ndim == 3:  # colour: as the decoder would meet it
            image = image[..., :3]
        yield png(image)


def synthetic(rng: np.random.Generator) -> dict[str, list[bytes]]:
    """Blank, noise, gradients, text and hand-like shapes, several of each."""
    y, x = np.mgrid[0:512, 0:512] / 511.0
    blank = [png(np.full((512, 512), v)) for v in (0, 1, 30, 128, 200, 255)]
    noise = [png(rng.integers(0, 256, (512, 512))) for _ in range(5)]
    noise += [png(np.clip(rng.normal(m, 40, (512, 512)), 0, 255)) for m in (60, 128, 190)]
    noise += [png(np.clip(rng.normal(128, 60, (64, 64)), 0, 255).repeat(8, 0).repeat(8, 1))]
    gradients = [png(255 * g) for g in (x, y, 1 - x, (x + y) / 2, np.hypot(x - 0.5, y - 0.5))]
    text, hands = [], []
    for seed in range(10):
        page = Image.new("L", (512, 640), int(rng.integers(200, 256)))
        draw = ImageDraw.Draw(page)
        for line in range(24):
            draw.text((20, 20 + 25 * line), f"Report {seed}-{line}: lungs clear " * 3, fill=0)
        text.append(png(np.asarray(page)))
        hands.append(png(hand_like(rng)))
    return {"blank": blank, "noise": noise, "gradient": gradients, "text": text, "hand-like": hands}


def hand_like(rng: np.random.Generator) -> np.ndarray:
    """A bright palm and five fingers of bone on a dark film: a body part that is not a chest."""
    film = Image.new("L", (512, 640), int(rng.integers(0, 40)))
    draw = ImageDraw.Draw(film)
    cx, top = 256 + int(rng.integers(-30, 30)), 330
    draw.ellipse((cx - 120, top, cx + 120, top + 260), fill=int(rng.integers(150, 210)))
    for k, length in enumerate((150, 220, 250, 230, 180)):
        fx = cx - 120 + 60 * k
        draw.rounded_rectangle((fx - 18, top - length + 40, fx + 18, top + 60), 18, fill=200)
        for joint in range(3):
            jy = top - length + 60 + joint * length // 3
            draw.line((fx - 16, jy, fx + 16, jy), fill=90, width=4)
    pixels = np.asarray(film, dtype=float) + rng.normal(0, 8, (640, 512))
    return np.clip(pixels, 0, 255)


def altered(xrays: list[np.ndarray]) -> dict[str, list[bytes]]:
    """Real TEST X-rays made wrong: inverted, rotated a quarter turn, a tight corner crop."""
    quarter = [x[: x.shape[0] // 3, : x.shape[1] // 3] for x in xrays]
    return {
        "inverted X-ray": [png(255 - x) for x in xrays],
        "rotated 90 X-ray": [
            png(np.rot90(x, k)) for i, x in enumerate(xrays) for k in (1 + 2 * (i % 2),)
        ],
        "corner crop": [png(q) for q in quarter],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="/work/shared/data/coronahack-dev")
    parser.add_argument("--size", type=int, nargs=2, default=(300, 300), metavar=("H", "W"))
    parser.add_argument("--altered", type=int, default=100, help="TEST X-rays altered per kind")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    settings = OutputSettings((args.size[0], args.size[1]))
    root = Path(args.data, IMAGES)
    rng = np.random.default_rng(args.seed)
    train_files = sorted((root / "train").iterdir())
    rng.shuffle(train_files)
    cut = int(0.8 * len(train_files))
    test_files = sorted((root / "test").iterdir())
    guard = fit_guard(
        preprocessed(train_files[:cut], settings), preprocessed(train_files[cut:], settings)
    )
    print(guard.describe(), file=sys.stderr)

    test = preprocessed(test_files, settings)
    rows = [
        (
            "real chest X-ray (TEST): false alarms",
            len(test),
            int(guard.flags(guard.scores(test)).sum()),
        )
    ]
    picks = [test[i] for i in rng.choice(len(test), min(args.altered, len(test)), replace=False)]
    kinds = {"photograph (skimage.data)": list(photographs()), **synthetic(rng), **altered(picks)}
    detected_all = total = 0
    for kind, encoded in kinds.items():
        images = [np.asarray(prepare(data, kind, settings)[0]) for data in encoded]
        flagged = int(guard.flags(guard.scores(images)).sum())
        rows.append((f"{kind}: detected", len(images), flagged))
        detected_all, total = detected_all + flagged, total + len(images)
    rows.append(("all stand-ins: detected", total, detected_all))
    table = pd.DataFrame(rows, columns=["images", "n", "flagged"])
    table["rate"] = (table["flagged"] / table["n"]).map("{:.1%}".format)
    print(table.to_markdown(index=False) if _has_tabulate() else table.to_string(index=False))
    return 0


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
