"""Training steps in float32 against mixed bfloat16: what ``training.mixed_precision: auto`` buys.

The recipe network (``build_model`` with default ``ModelParams``, its augmentation layer,
``compile_model`` with default ``OptimizerParams``) at 150x150, batch 32, trained one
batch at a time (``train_on_batch``, as ``fit`` runs a step) in each policy. The images
are synthetic uint8 noise: a step costs the same whatever the pixels, and no data set is
needed. Each repetition times ``--steps`` steps of every policy in turn (after
``--warmup`` untimed steps each, which compile the step), so both see the same load on a
shared machine; every figure is the median over all timed steps, the ratio is bfloat16
against float32 measured in the same invocation.

Recorded beside the figures: the CPU flags that decide ``auto`` (``amx_bf16``,
``avx512_bf16``) and what ``auto`` resolves to here (``modeling.precision``).

Usage: python benchmarks/precision.py [--size 150] [--batch-size 32] [--steps 10]
       [--warmup 2] [--repeats 3] [--out benchmarks/results/precision.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    base_parser,
    check_repeats,
    cpu_flags,
    cpu_model,
    cpu_parallelism,
    machine,
    median,
    table,
    versions,
    write_result,
)

POLICIES = ("float32", "mixed_bfloat16")


def _arguments() -> argparse.Namespace:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=150, help="image height and width (px)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per repetition")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per policy first")
    args = parser.parse_args()
    check_repeats(args.repeats)
    if args.steps < 1 or args.warmup < 1 or args.batch_size < 1:
        sys.exit("error: --steps, --warmup and --batch-size must be at least 1")
    return args


def main() -> None:
    args = _arguments()
    parallel_before = cpu_parallelism()

    import numpy as np

    from chest_xray.modeling.precision import resolve_precision

    auto = resolve_precision("auto")
    shape = (args.size, args.size, 1)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.batch_size, *shape), dtype=np.uint8)
    labels = (rng.random(args.batch_size) < 0.5).astype("float32")
    models = {policy: _model(policy, shape) for policy in POLICIES}
    parameters = models["float32"].count_params()
    print(
        f"{cpu_model()}; auto resolves to {auto.describe()}\n"
        f"{args.size}x{args.size}, batch {args.batch_size}, {parameters:,} parameters, "
        f"{args.steps} timed steps x {args.repeats} repetitions per policy"
    )
    seconds = _time_steps(
        models, images, labels, steps=args.steps, warmup=args.warmup, repeats=args.repeats
    )

    step = {policy: median(values) for policy, values in seconds.items()}
    rate = {policy: args.batch_size / step[policy] for policy in POLICIES}
    ratio = rate["mixed_bfloat16"] / rate["float32"]
    print()
    print(
        table(
            [(policy, rate[policy], step[policy]) for policy in POLICIES],
            ["policy", "train images/s", "s/step"],
        )
    )
    print(f"\nbfloat16 / float32 = {ratio:.2f}x; auto here: {auto.policy}")
    write_result(
        "precision",
        {
            "benchmark": "precision",
            "machine": machine(),
            "cpu_flags": cpu_flags(),
            "cpu_parallelism": [parallel_before, cpu_parallelism()],
            "versions": versions("tensorflow", "keras", "numpy"),
            "image_size": [args.size, args.size],
            "batch_size": args.batch_size,
            "parameters": parameters,
            "steps": args.steps,
            "warmup_steps": args.warmup,
            "repeats": args.repeats,
            "auto": {"policy": auto.policy, "reason": auto.reason},
            "seconds_per_step": seconds,
            "median_seconds_per_step": step,
            "images_per_s": rate,
            "ratio_bfloat16_vs_float32": ratio,
        },
        args.out,
    )


def _time_steps(
    models: dict[str, Any], images: Any, labels: Any, *, steps: int, warmup: int, repeats: int
) -> dict[str, list[float]]:
    """Seconds of each timed training step per policy: ``warmup`` untimed steps each, then
    ``repeats`` rounds of ``steps`` steps of every policy in turn (the same machine load)."""
    for model in models.values():
        for _ in range(warmup):
            model.train_on_batch(images, labels)
    seconds: dict[str, list[float]] = {policy: [] for policy in models}
    for rep in range(1, repeats + 1):
        for policy, model in models.items():
            for _ in range(steps):
                start = time.perf_counter()
                model.train_on_batch(images, labels)
                seconds[policy].append(time.perf_counter() - start)
        medians = ", ".join(f"{p} {median(s[-steps:]):.3f} s/step" for p, s in seconds.items())
        print(f"rep {rep}: {medians}")
    return seconds


def _model(policy: str, shape: tuple[int, int, int]) -> Any:  # a keras.Model, imported late
    """The recipe network, built and compiled under ``policy`` (then float32 again)."""
    import keras

    from chest_xray.modeling.augmentation import build_augmentation
    from chest_xray.modeling.model import build_model, compile_model
    from chest_xray.params import AugmentationParams, ModelParams, OptimizerParams

    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build_model(shape, ModelParams(), build_augmentation(AugmentationParams(), seed=0))
        compile_model(model, OptimizerParams())
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return model


if __name__ == "__main__":
    main()
