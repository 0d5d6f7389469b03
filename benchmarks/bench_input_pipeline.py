"""Training input pipeline alone (load + augmentation, no model): project vs legacy generator.

Project path: ``chest_xray.modeling.batches.ImageBatches`` over a uint8 array in memory,
each batch cast, rescaled and passed through
``chest_xray.modeling.augmentation.build_augmentation(AugmentationParams())`` (one
``RandomAffine`` layer: the transforms composed into one warp per image) in
training mode, as ``fit`` runs it: in a compiled ``tf.function`` (also
reported: called eagerly, batch by batch).

Legacy path: Keras' ``ImageDataGenerator`` with the write-up's settings
(rescale 1/255, rotation 40, shifts 0.2, shear 0.2, zoom 0.2, horizontal
flip), both ``flow_from_directory`` over the same PNGs (what the write-up did:
decodes every epoch) and ``flow`` over the same images as a float array.

Also timed, for reference: Keras' stock random layers chained (RandomFlip,
RandomRotation, RandomTranslation, RandomShear, RandomZoom), the project's
augmentation before ``RandomAffine``: four resamplings per image instead of one.

Same images (150x150 grey), batch 32, one epoch = every image once; medians
over ``--repeats`` epochs after one warm-up epoch per path, paths interleaved.

Usage: python benchmarks/bench_input_pipeline.py [DATA] [--images N] [--repeats N]
DATA defaults to ../shared/data/coronahack (Kaggle layout).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median, table
from _data import (
    WRITE_UP_AUGMENTATION,
    Sample,
    legacy_image_data_generator,
    load_sample,
    sample_benchmark,
    write_up_flow,
)

SIZE = (150, 150)
BATCH = 32
GOAL_RATIO = 3.0
PROJECT = "project (ImageBatches + RandomAffine, tf.function)"
FROM_DIRECTORY = "legacy ImageDataGenerator.flow_from_directory (write-up)"
FROM_ARRAYS = "legacy ImageDataGenerator.flow (float array)"
STOCK = "before RandomAffine: stock Keras layers chained, tf.function"


def epoch_runner(images, labels, augmentation, compiled: bool) -> Callable[[], None]:
    """One epoch of ImageBatches through ``augmentation``; returns a callable that runs it."""
    import keras
    import numpy as np
    import tensorflow as tf

    from chest_xray.modeling.batches import ImageBatches

    batches = ImageBatches(images, labels, BATCH, shuffle=True, seed=0)
    rescale = keras.layers.Rescaling(1.0 / 255.0)

    def transform(x):
        return augmentation(rescale(keras.ops.cast(x, "float32")), training=True)

    step = tf.function(transform) if compiled else transform

    def run() -> None:
        for index in range(len(batches)):
            x, _ = batches[index]
            np.asarray(step(x))  # materialise, as the legacy path returns NumPy
        batches.on_epoch_end()

    return run


def stock_layer_chain():
    """The write-up's ranges as Keras' stock random layers, one resampling each.

    What ``build_augmentation`` returned before ``RandomAffine`` (same ranges;
    shear as a slope, (0, f) because RandomShear flips the sign itself).
    """
    import keras

    from chest_xray.params import AugmentationParams

    p = AugmentationParams()
    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=0),
            keras.layers.RandomRotation(p.rotation_degrees / 360, fill_mode="nearest", seed=1),
            keras.layers.RandomTranslation(
                p.height_shift, p.width_shift, fill_mode="nearest", seed=2
            ),
            keras.layers.RandomShear(
                x_factor=(0.0, p.shear), y_factor=(0.0, 0.0), fill_mode="nearest", seed=3
            ),
            keras.layers.RandomZoom(p.zoom, p.zoom, fill_mode="nearest", seed=4),
        ]
    )


def epoch_runner_legacy(generator_iterator) -> Callable[[], None]:
    def run() -> None:
        for _ in range(len(generator_iterator)):
            next(generator_iterator)

    return run


def input_paths(sample: Sample) -> tuple[dict[str, Callable[[], None]], str]:
    """Each path's one-epoch runner over the same images, and the legacy generator's class."""
    import numpy as np

    from chest_xray.modeling.augmentation import build_augmentation
    from chest_xray.params import AugmentationParams

    ImageDataGenerator, legacy_name = legacy_image_data_generator()
    generator = ImageDataGenerator(**WRITE_UP_AUGMENTATION)
    from_directory = write_up_flow(generator, sample, SIZE, BATCH)
    from_arrays = generator.flow(
        sample.images.astype(np.float32), sample.labels, batch_size=BATCH, shuffle=True, seed=0
    )
    augmentation = build_augmentation(AugmentationParams(), seed=0)
    images, labels = sample.images, sample.labels
    paths = {
        PROJECT: epoch_runner(images, labels, augmentation, compiled=True),
        "project, augmentation called eagerly": epoch_runner(
            images, labels, augmentation, compiled=False
        ),
        FROM_DIRECTORY: epoch_runner_legacy(from_directory),
        FROM_ARRAYS: epoch_runner_legacy(from_arrays),
        STOCK: epoch_runner(images, labels, stock_layer_chain(), compiled=True),
    }
    return paths, legacy_name


def time_paths(paths: dict[str, Callable[[], None]], repeats: int) -> dict[str, list[float]]:
    """Seconds per epoch of each path, paths interleaved, after one warm-up epoch each."""
    for run in paths.values():  # warm-up: tracing, file cache, thread pools
        run()
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    for rep in range(repeats):
        for name, run in paths.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
        print(f"rep {rep + 1}: " + ", ".join(f"{s[-1]:.2f} s" for s in seconds.values()))
    return seconds


def measure(root: Path, images: int, repeats: int) -> dict[str, Any]:
    """Every figure of the result JSON but the machine's."""
    with tempfile.TemporaryDirectory(prefix="bench-inputs-") as tmp:
        sample = load_sample(root, images, SIZE, Path(tmp) / "png")
        n = len(sample.images)
        paths, legacy_name = input_paths(sample)
        print(f"{n} images at {SIZE[0]}x{SIZE[1]}, batch {BATCH}; legacy class {legacy_name}")
        seconds = time_paths(paths, repeats)
    rate = {name: n / median(values) for name, values in seconds.items()}
    return {
        "images": n,
        "image_size": SIZE,
        "batch_size": BATCH,
        "repeats": repeats,
        "legacy_class": legacy_name,
        "legacy_settings": WRITE_UP_AUGMENTATION,
        "seconds_per_epoch": seconds,
        "images_per_s": rate,
        "ratio_project_vs_flow_from_directory": rate[PROJECT] / rate[FROM_DIRECTORY],
        "ratio_project_vs_flow_arrays": rate[PROJECT] / rate[FROM_ARRAYS],
        "ratio_stock_layers_vs_flow_from_directory": rate[STOCK] / rate[FROM_DIRECTORY],
        "goal_ratio": GOAL_RATIO,
    }


def report(result: dict[str, Any]) -> None:
    rate = result["images_per_s"]
    print()
    print(
        table(
            [(name, value, value / rate[FROM_DIRECTORY]) for name, value in rate.items()],
            ["path", "images/s", "x flow_from_directory"],
        )
    )
    print(
        "\nproject / legacy flow_from_directory = "
        f"{result['ratio_project_vs_flow_from_directory']:.1f}x (goal >= {GOAL_RATIO:g}x)"
    )
    print(f"project / legacy flow (arrays) = {result['ratio_project_vs_flow_arrays']:.1f}x")
    print(
        "stock layers chained / legacy flow_from_directory = "
        f"{result['ratio_stock_layers_vs_flow_from_directory']:.1f}x"
    )


def main() -> None:
    sample_benchmark(
        name="input_pipeline",
        description=__doc__.splitlines()[0],
        measure=measure,
        report=report,
        packages=("tensorflow", "keras", "numpy", "scipy", "pillow"),
    )


if __name__ == "__main__":
    main()
