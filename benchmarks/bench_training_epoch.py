"""One training epoch end to end on the CPU at 150x150: project input path vs legacy generator.

Both feed the recipe model (``build_model`` with default ``ModelParams``,
``compile_model`` with default ``OptimizerParams``: Adam 1e-4), batch 32:

- project: ``ImageBatches`` over a uint8 array, the augmentation layer inside
  the model (``build_augmentation(AugmentationParams())``: one composed affine
  warp per image), as ``train_classifier`` does;
- legacy: the same model without the augmentation layer, fed by
  ``ImageDataGenerator.flow_from_directory`` with the write-up's settings over
  the same PNGs (its rescale 1/255 comes on top of the model's own Rescaling
  layer: one extra multiply per pixel, no effect on the cost).

Also timed, outside the ratio: the project's path under a ``mixed_bfloat16``
policy (``training.mixed_precision: bfloat16``).

Epochs are timed by a callback (training steps only, no validation); the
paths alternate one ``fit(epochs=1)`` at a time, after one warm-up epoch each.

Usage: python benchmarks/bench_training_epoch.py [DATA] [--images N] [--repeats N]
DATA defaults to ../shared/data/coronahack (Kaggle layout).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
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


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=SHARED_DATA / "coronahack")
    parser.add_argument("--images", type=int, default=512, help="images per epoch")
    args = parser.parse_args()
    check_repeats(args.repeats)
    parallel_before = cpu_parallelism()
    root = args.data.resolve()

    import keras

    from chest_xray.modeling.augmentation import build_augmentation
    from chest_xray.modeling.batches import ImageBatches
    from chest_xray.modeling.model import build_model, compile_model
    from chest_xray.params import AugmentationParams, ModelParams, OptimizerParams

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.seconds.append(time.perf_counter() - self._start)

    with tempfile.TemporaryDirectory(prefix="bench-epoch-") as tmp:
        sample = load_sample(root, args.images, SIZE, Path(tmp) / "png")
        n = len(sample.images)
        keras.utils.set_random_seed(0)
        shape = (*SIZE, 1)

        project_model = build_model(
            shape, ModelParams(), build_augmentation(AugmentationParams(), seed=0)
        )
        compile_model(project_model, OptimizerParams())
        project_data = ImageBatches(sample.images, sample.labels, BATCH, shuffle=True, seed=0)

        legacy_model = build_model(shape, ModelParams(), None)
        compile_model(legacy_model, OptimizerParams())
        ImageDataGenerator, legacy_name = legacy_image_data_generator()
        legacy_data = ImageDataGenerator(**WRITE_UP_AUGMENTATION).flow_from_directory(
            str(sample.png_dir),
            target_size=SIZE,
            color_mode="grayscale",
            class_mode="binary",
            batch_size=BATCH,
            shuffle=True,
            seed=0,
        )
        print(
            f"{n} images at {SIZE[0]}x{SIZE[1]}, batch {BATCH}, model "
            f"{project_model.count_params():,} parameters; legacy class {legacy_name}"
        )
        # For reference, not part of the ratio: the project's path with 16-bit
        # activations (training.mixed_precision: bfloat16).
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        try:
            bf16_model = build_model(
                shape, ModelParams(), build_augmentation(AugmentationParams(), seed=0)
            )
            compile_model(bf16_model, OptimizerParams())
        finally:
            keras.mixed_precision.set_global_policy("float32")
        bf16_data = ImageBatches(sample.images, sample.labels, BATCH, shuffle=True, seed=0)
        runs = {
            "project": (project_model, project_data, EpochTimer()),
            "legacy flow_from_directory": (legacy_model, legacy_data, EpochTimer()),
            "project, mixed_precision bfloat16": (bf16_model, bf16_data, EpochTimer()),
        }
        for rep in range(args.repeats + 1):  # the first epoch of each is the warm-up
            for model, data, timer in runs.values():
                model.fit(data, epochs=1, shuffle=False, verbose=0, callbacks=[timer])
            if rep:
                print(
                    f"rep {rep}: "
                    + ", ".join(f"{name} {t.seconds[-1]:.1f} s" for name, (*_, t) in runs.items())
                )

    seconds = {name: timer.seconds[1:] for name, (*_, timer) in runs.items()}
    warmup = {name: timer.seconds[0] for name, (*_, timer) in runs.items()}
    rate = {name: n / median(values) for name, values in seconds.items()}
    ratio = rate["project"] / rate["legacy flow_from_directory"]
    print()
    print(
        table(
            [(name, rate[name], median(seconds[name])) for name in runs],
            ["input path", "train images/s", "s/epoch"],
        )
    )
    print(f"\nproject / legacy = {ratio:.2f}x (one CPU epoch; the model dominates)")
    bf16_ratio = rate["project, mixed_precision bfloat16"] / rate["project"]
    print(f"project bfloat16 / project float32 = {bf16_ratio:.2f}x")
    write_result(
        "training_epoch",
        {
            "benchmark": "training_epoch",
            "machine": machine(),
            "cpu_parallelism": [parallel_before, cpu_parallelism()],
            "versions": versions("tensorflow", "keras", "numpy", "scipy"),
            "data": str(root),
            "images": n,
            "image_size": SIZE,
            "batch_size": BATCH,
            "parameters": project_model.count_params(),
            "repeats": args.repeats,
            "legacy_class": legacy_name,
            "seconds_per_epoch": seconds,
            "warmup_epoch_seconds": warmup,
            "images_per_s": rate,
            "ratio_project_vs_legacy": ratio,
            "ratio_bfloat16_vs_float32": bf16_ratio,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
