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
        from chest_xray.modeling.augmentation import build_augmentation
        from chest_xray.params import AugmentationParams

        augmentation = build_augmentation(AugmentationParams(), seed=0)
        paths = {
            "project (ImageBatches + RandomAffine, tf.function)": epoch_runner(
                sample.images, sample.labels, augmentation, compiled=True
            ),
            "project, augmentation called eagerly": epoch_runner(
                sample.images, sample.labels, augmentation, compiled=False
            ),
            "legacy ImageDataGenerator.flow_from_directory (write-up)": epoch_runner_legacy(
                from_directory
            ),
            "legacy ImageDataGenerator.flow (float array)": epoch_runner_legacy(from_arrays),
            "before RandomAffine: stock Keras layers chained, tf.function": epoch_runner(
                sample.images, sample.labels, stock_layer_chain(), compiled=True
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
        f"stock layers chained / legacy flow_from_directory = "
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
            "ratio_stock_layers_vs_flow_from_directory": rate[names[4]] / rate[baseline],
            "goal_ratio": 3.0,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
