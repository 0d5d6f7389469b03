"""A labelled sample of CoronaHack train images at a fixed size, for the input-pipeline benchmarks.

Both sides get the same pixels: the project's path as a uint8 array in memory
(what ``train_model`` holds), the legacy generator as the same PNGs in
``<dir>/<class>/`` folders (what ``flow_from_directory`` reads, as the write-up
did) or as a float array (``flow``).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _common import kaggle_images


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
