"""Training input pipeline alone (load + augmentation, no model): project vs legacy generator.

Project path: ``chest_xray.inputs.ImageBatches`` over a uint8 array in memory,
each batch cast, rescaled and passed through
``chest_xray.model.build_augmentation(AugmentationParams())`` in training
mode, as ``fit`` runs it: in a compiled ``tf.function`` (also reported:
called eagerly, batch by batch).

Legacy path: Keras' ``ImageDataGenerator`` with the write-up's settings
(rescale 1/255, rotation 40, shifts 0.2, shear 0.2, zoom 0.2, horizontal
flip), both ``flow_from_directory`` over the same PNGs (what the write-up did:
decodes every epoch) and ``flow`` over the same images as a float array.

Also timed, and labelled as such: a prototype that is NOT the project's code,
the same transforms composed into one warp per image (what a faster
``build_augmentation`` could do).

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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    SHARED_DATA,
    base_parser,
    check_repeats,
    cpu_parallelism,
    machine,
    median,
    table,
    versions,
    write_result,
)
from _data import WRITE_UP_AUGMENTATION, legacy_image_data_generator, load_sample

SIZE = (150, 150)
BATCH = 32


def epoch_runner_project(images, labels, compiled: bool) -> Callable[[], None]:
    """One epoch of the project's input path; returns a callable that runs it."""
    import keras
    import numpy as np
    import tensorflow as tf

    from chest_xray.inputs import ImageBatches
    from chest_xray.model import build_augmentation
    from chest_xray.params import AugmentationParams

    batches = ImageBatches(images, labels, BATCH, shuffle=True, seed=0)
    augmentation = build_augmentation(AugmentationParams(), seed=0)
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


def composed_affine_prototype(params):
    """NOT the project's code: the same transforms composed into one warp per image.

    A throughput prototype for a possible change to ``build_augmentation``: the
    project applies flip, rotation, translation, shear and zoom as five layers,
    i.e. up to four bilinear resamplings of every image; the legacy generator
    composes one affine matrix per image and resamples once. Samples the same
    ranges (rotation +-40 degrees, shifts +-0.2, shear slope +-0.2, zoom
    0.8-1.2 per axis, horizontal flip); not checked for statistical equivalence.
    """
    import math

    import tensorflow as tf

    from chest_xray.params import AugmentationParams

    params = params or AugmentationParams()

    def transform(images):
        shape = tf.shape(images)
        n = shape[0]
        h = tf.cast(shape[1], tf.float32)
        w = tf.cast(shape[2], tf.float32)

        def uniform(limit):
            return tf.random.uniform((n,), -limit, limit)

        angle = uniform(params.rotation_degrees * math.pi / 180)
        shear = uniform(params.shear)
        zoom_x = 1.0 + uniform(params.zoom)
        zoom_y = 1.0 + uniform(params.zoom)
        flip = tf.where(tf.random.uniform((n,)) < 0.5, -1.0, 1.0)
        tx = uniform(params.width_shift) * w
        ty = uniform(params.height_shift) * h
        cos, sin = tf.cos(angle), tf.sin(angle)
        # output -> input map about the centre: x' = A (x - c) + c + t
        a00 = cos * zoom_x * flip
        a01 = (-sin + cos * shear) * zoom_y
        a10 = sin * zoom_x * flip
        a11 = (cos + sin * shear) * zoom_y
        cx, cy = (w - 1) / 2, (h - 1) / 2
        b0 = cx - a00 * cx - a01 * cy + tx
        b1 = cy - a10 * cx - a11 * cy + ty
        zeros = tf.zeros_like(a00)
        matrix = tf.stack([a00, a01, b0, a10, a11, b1, zeros, zeros], axis=1)
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=images,
            transforms=matrix,
            output_shape=shape[1:3],
            fill_value=0.0,
            interpolation="BILINEAR",
            fill_mode="NEAREST",
        )

    return transform


def epoch_runner_prototype(images, labels) -> Callable[[], None]:
    import keras
    import numpy as np
    import tensorflow as tf

    from chest_xray.inputs import ImageBatches

    batches = ImageBatches(images, labels, BATCH, shuffle=True, seed=0)
    warp = composed_affine_prototype(None)
    step = tf.function(lambda x: warp(keras.ops.cast(x, "float32") / 255.0))

    def run() -> None:
        for index in range(len(batches)):
            x, _ = batches[index]
            np.asarray(step(x))
        batches.on_epoch_end()

    return run


def epoch_runner_legacy(generator_iterator) -> Callable[[], None]:
    def run() -> None:
        for _ in range(len(generator_iterator)):
            next(generator_iterator)

    return run


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=SHARED_DATA / "coronahack")
    parser.add_argument("--images", type=int, default=512, help="images per epoch")
    args = parser.parse_args()
    check_repeats(args.repeats)
    parallel_before = cpu_parallelism()
    root = args.data.resolve()

    with tempfile.TemporaryDirectory(prefix="bench-inputs-") as tmp:
        sample = load_sample(root, args.images, SIZE, Path(tmp) / "png")
        n = len(sample.images)
        import numpy as np

        ImageDataGenerator, legacy_name = legacy_image_data_generator()
        generator = ImageDataGenerator(**WRITE_UP_AUGMENTATION)
        from_directory = generator.flow_from_directory(
            str(sample.png_dir),
            target_size=SIZE,
            color_mode="grayscale",
            class_mode="binary",
            batch_size=BATCH,
            shuffle=True,
            seed=0,
        )
        from_arrays = generator.flow(
            sample.images.astype(np.float32), sample.labels, batch_size=BATCH, shuffle=True, seed=0
        )
        paths = {
            "project (ImageBatches + augmentation layers, tf.function)": epoch_runner_project(
                sample.images, sample.labels, compiled=True
            ),
            "project, augmentation called eagerly": epoch_runner_project(
                sample.images, sample.labels, compiled=False
            ),
            "legacy ImageDataGenerator.flow_from_directory (write-up)": epoch_runner_legacy(
                from_directory
            ),
            "legacy ImageDataGenerator.flow (float array)": epoch_runner_legacy(from_arrays),
            "prototype, not in the project: one composed affine warp": epoch_runner_prototype(
                sample.images, sample.labels
            ),
        }
        print(f"{n} images at {SIZE[0]}x{SIZE[1]}, batch {BATCH}; legacy class {legacy_name}")
        for run in paths.values():  # warm-up: tracing, file cache, thread pools
            run()
        seconds: dict[str, list[float]] = {name: [] for name in paths}
        for rep in range(args.repeats):
            for name, run in paths.items():
                start = time.perf_counter()
                run()
                seconds[name].append(time.perf_counter() - start)
            print(f"rep {rep + 1}: " + ", ".join(f"{s[-1]:.2f} s" for s in seconds.values()))

    rate = {name: n / median(values) for name, values in seconds.items()}
    names = list(paths)
    project, baseline = names[0], names[2]
    ratio = rate[project] / rate[baseline]
    ratio_arrays = rate[project] / rate[names[3]]
    print()
    print(
        table(
            [(name, rate[name], rate[name] / rate[baseline]) for name in names],
            ["path", "images/s", "x flow_from_directory"],
        )
    )
    print(f"\nproject / legacy flow_from_directory = {ratio:.1f}x (goal >= 3x)")
    print(f"project / legacy flow (arrays) = {ratio_arrays:.1f}x")
    print(
        f"prototype (one composed warp) / legacy flow_from_directory = "
        f"{rate[names[4]] / rate[baseline]:.1f}x"
    )
    write_result(
        "input_pipeline",
        {
            "benchmark": "input_pipeline",
            "machine": machine(),
            "cpu_parallelism": [parallel_before, cpu_parallelism()],
            "versions": versions("tensorflow", "keras", "numpy", "scipy", "pillow"),
            "data": str(root),
            "images": n,
            "image_size": SIZE,
            "batch_size": BATCH,
            "repeats": args.repeats,
            "legacy_class": legacy_name,
            "legacy_settings": WRITE_UP_AUGMENTATION,
            "seconds_per_epoch": seconds,
            "images_per_s": rate,
            "ratio_project_vs_flow_from_directory": ratio,
            "ratio_project_vs_flow_arrays": ratio_arrays,
            "ratio_prototype_vs_flow_from_directory": rate[names[4]] / rate[baseline],
            "goal_ratio": 3.0,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
