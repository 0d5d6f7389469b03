"""A labelled sample of CoronaHack train images at a fixed size, for the input-pipeline benchmarks.

Both sides get the same pixels: the project's path as a uint8 array in memory
(what ``train_model`` holds), the legacy generator as the same PNGs in
``<dir>/<class>/`` folders (what ``flow_from_directory`` reads, as the write-up
did) or as a float array (``flow``). ``sample_benchmark`` is the two benchmarks' shared
command line and result JSON.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    SHARED_DATA,
    base_parser,
    check_repeats,
    cpu_parallelism,
    kaggle_images,
    machine,
    versions,
    write_result,
)


@dataclass
class Sample:
    images: np.ndarray  # (N, H, W, 1) uint8
    labels: np.ndarray  # (N,) float32, 1 = PNEUMONIA
    png_dir: Path  # <png_dir>/{NORMAL,PNEUMONIA}/<stem>.png


def load_sample(root: Path, n: int, size: tuple[int, int], png_dir: Path) -> Sample:
    """The first ``n`` labelled train images (by name), preprocessed by the project's code."""
    from PIL import Image

    from chest_xray.data.imaging import OutputSettings, preprocess

    folder = kaggle_images(root, "train")
    labels_by_name = {}
    with (root / "Chest_xray_Corona_Metadata.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["Dataset_type"] == "TRAIN":
                labels_by_name[row["X_ray_image_name"]] = row["Label"]
    files = [f for f in sorted(folder.iterdir()) if f.name in labels_by_name][:n]
    if len(files) < n:
        raise SystemExit(f"error: only {len(files)} labelled train images in {folder}, need {n}")
    images = np.empty((n, *size, 1), dtype=np.uint8)
    labels = np.empty(n, dtype=np.float32)
    for index, file in enumerate(files):
        png = preprocess(file.read_bytes(), file.name, OutputSettings(size)).png
        label = "NORMAL" if labels_by_name[file.name] == "Normal" else "PNEUMONIA"
        target = png_dir / label / f"{file.stem}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(png)
        with Image.open(io.BytesIO(png)) as image:
            images[index, ..., 0] = np.asarray(image)
        labels[index] = float(label == "PNEUMONIA")
    return Sample(images, labels, png_dir)


def legacy_image_data_generator() -> tuple[type, str]:
    """Keras' legacy ImageDataGenerator as the write-up imported it, and where it lives now."""
    try:
        from tensorflow.keras.preprocessing.image import ImageDataGenerator
    except ImportError as error:  # pragma: no cover - depends on the installed stack
        raise SystemExit(
            "error: tensorflow.keras.preprocessing.image.ImageDataGenerator is gone from this "
            f"TensorFlow/Keras ({error}); nothing to compare against"
        ) from error
    return ImageDataGenerator, f"{ImageDataGenerator.__module__}.{ImageDataGenerator.__name__}"


# The write-up's training generator; its validation one had only the rescale.
WRITE_UP_AUGMENTATION = {
    "rescale": 1.0 / 255,
    "rotation_range": 40,
    "width_shift_range": 0.2,
    "height_shift_range": 0.2,
    "shear_range": 0.2,
    "zoom_range": 0.2,
    "horizontal_flip": True,
}


def write_up_flow(generator: Any, sample: Sample, size: tuple[int, int], batch: int) -> Any:
    """``generator.flow_from_directory`` over the sample's PNGs, as the write-up read them."""
    return generator.flow_from_directory(
        str(sample.png_dir),
        target_size=size,
        color_mode="grayscale",
        class_mode="binary",
        batch_size=batch,
        shuffle=True,
        seed=0,
    )


def sample_benchmark(
    name: str,
    description: str,
    measure: Callable[[Path, int, int], dict[str, Any]],
    report: Callable[[dict[str, Any]], None],
    packages: tuple[str, ...],
) -> None:
    """The command line of a benchmark over a sample: ``[DATA] [--images N] [--repeats N]``.

    ``measure(root, images, repeats)`` takes the figures, ``report`` prints them; the JSON
    adds the machine, the cores free before and after, and the versions of ``packages``.
    """
    parser = base_parser(description)
    parser.add_argument("data", nargs="?", type=Path, default=SHARED_DATA / "coronahack")
    parser.add_argument("--images", type=int, default=512, help="images per epoch")
    args = parser.parse_args()
    check_repeats(args.repeats)
    parallel_before = cpu_parallelism()
    root = args.data.resolve()
    measured = measure(root, args.images, args.repeats)
    report(measured)
    write_result(
        name,
        {
            "benchmark": name,
            "machine": machine(),
            "cpu_parallelism": [parallel_before, cpu_parallelism()],
            "versions": versions(*packages),
            "data": str(root),
            **measured,
        },
        args.out,
    )
