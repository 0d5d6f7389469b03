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
LEGACY = "legacy flow_from_directory"
BF16 = "project, mixed_precision bfloat16"
# (model, its training data, its epoch timer)
Run = tuple[Any, Any, Any]


def epoch_timer() -> Any:
    """A Keras callback whose ``seconds`` holds each epoch's training time (no validation)."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.seconds.append(time.perf_counter() - self._start)

    return EpochTimer()


def project_run(sample: Sample, precision: str = "float32") -> Run:
    """The recipe model with its augmentation layer, fed by ``ImageBatches``, as in training.

    ``precision`` ``"mixed_bfloat16"`` builds it as ``training.mixed_precision: bfloat16``
    does; the global policy is restored whatever happens.
    """
    import keras

    from chest_xray.modeling.augmentation import build_augmentation
    from chest_xray.modeling.batches import ImageBatches
    from chest_xray.modeling.model import build_model, compile_model
    from chest_xray.params import AugmentationParams, ModelParams, OptimizerParams

    keras.mixed_precision.set_global_policy(precision)
    try:
        model = build_model(
            (*SIZE, 1), ModelParams(), build_augmentation(AugmentationParams(), seed=0)
        )
        compile_model(model, OptimizerParams())
    finally:
        keras.mixed_precision.set_global_policy("float32")
    data = ImageBatches(sample.images, sample.labels, BATCH, shuffle=True, seed=0)
    return model, data, epoch_timer()


def legacy_run(sample: Sample) -> tuple[Run, str]:
    """The same model without its augmentation layer, fed by the write-up's generator."""
    from chest_xray.modeling.model import build_model, compile_model
    from chest_xray.params import ModelParams, OptimizerParams

    model = build_model((*SIZE, 1), ModelParams(), None)
    compile_model(model, OptimizerParams())
    ImageDataGenerator, legacy_name = legacy_image_data_generator()
    data = write_up_flow(ImageDataGenerator(**WRITE_UP_AUGMENTATION), sample, SIZE, BATCH)
    return (model, data, epoch_timer()), legacy_name


def time_epochs(runs: dict[str, Run], repeats: int) -> dict[str, list[float]]:
    """Seconds of each run's epochs, alternating one ``fit(epochs=1)`` at a time.

    The first epoch of each is a warm-up and is left out of the result.
    """
    for rep in range(repeats + 1):
        for model, data, timer in runs.values():
            model.fit(data, epochs=1, shuffle=False, verbose=0, callbacks=[timer])
        if rep:
            print(
                f"rep {rep}: "
                + ", ".join(f"{name} {t.seconds[-1]:.1f} s" for name, (*_, t) in runs.items())
            )
    return {name: timer.seconds for name, (*_, timer) in runs.items()}


def measure(root: Path, images: int, repeats: int) -> dict[str, Any]:
    """Every figure of the result JSON but the machine's."""
    import keras

    with tempfile.TemporaryDirectory(prefix="bench-epoch-") as tmp:
        sample = load_sample(root, images, SIZE, Path(tmp) / "png")
        keras.utils.set_random_seed(0)
        project = project_run(sample)
        legacy, legacy_name = legacy_run(sample)
        print(
            f"{len(sample.images)} images at {SIZE[0]}x{SIZE[1]}, batch {BATCH}, model "
            f"{project[0].count_params():,} parameters; legacy class {legacy_name}"
        )
        # For reference, not part of the ratio: the project's path with 16-bit
        # activations (training.mixed_precision: bfloat16).
        runs = {
            "project": project,
            LEGACY: legacy,
            BF16: project_run(sample, "mixed_bfloat16"),
        }
        epochs = time_epochs(runs, repeats)
    seconds = {name: values[1:] for name, values in epochs.items()}
    rate = {name: len(sample.images) / median(values) for name, values in seconds.items()}
    return {
        "images": len(sample.images),
        "image_size": SIZE,
        "batch_size": BATCH,
        "parameters": project[0].count_params(),
        "repeats": repeats,
        "legacy_class": legacy_name,
        "seconds_per_epoch": seconds,
        "warmup_epoch_seconds": {name: values[0] for name, values in epochs.items()},
        "images_per_s": rate,
        "ratio_project_vs_legacy": rate["project"] / rate[LEGACY],
        "ratio_bfloat16_vs_float32": rate[BF16] / rate["project"],
    }


def report(result: dict[str, Any]) -> None:
    rate, seconds = result["images_per_s"], result["seconds_per_epoch"]
    print()
    print(
        table(
            [(name, rate[name], median(seconds[name])) for name in rate],
            ["input path", "train images/s", "s/epoch"],
        )
    )
    print(
        f"\nproject / legacy = {result['ratio_project_vs_legacy']:.2f}x "
        "(one CPU epoch; the model dominates)"
    )
    print(f"project bfloat16 / project float32 = {result['ratio_bfloat16_vs_float32']:.2f}x")


def main() -> None:
    sample_benchmark(
        name="training_epoch",
        description=__doc__.splitlines()[0],
        measure=measure,
        report=report,
        packages=("tensorflow", "keras", "numpy", "scipy"),
    )


if __name__ == "__main__":
    main()
