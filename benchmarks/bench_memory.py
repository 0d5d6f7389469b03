"""Peak memory (RSS) of training on the full coronahack-dev train split at 300x300.

1. Preprocess the TRAIN images of the dataset to 300x300 PNGs with the
   project's nodes (``join_metadata``, ``preprocess_images``, ``split_dataset``,
   default parameters) into a work folder; with ``--workdir`` the folder is
   kept, and the incremental node makes a rerun skip this step's work.
2. In a fresh process per repetition, run the real ``train_model`` node on it
   (default ``TrainingParams``, recipe model, ``epochs=1``): it loads the whole
   train and validation splits as the node does, then fits; a callback stops
   the epoch after ``--steps`` batches (the memory of a step does not grow
   with the step count), and the validation pass still runs. The child
   reports its own peak RSS (``getrusage`` ru_maxrss = VmHWM).

``--batch-size`` (default 32, the recipe's) shows what the batch costs;
``--mixed-precision bfloat16`` what 16-bit activations save and
``--micro-batches 2`` what gradient accumulation saves (same updates).

Usage: python benchmarks/bench_memory.py [DATA] [--steps N] [--repeats N] [--workdir DIR]
DATA defaults to ../shared/data/coronahack-dev (Kaggle layout, with a train split).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, get_args

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    SHARED_DATA,
    base_parser,
    catalog_config,
    check_repeats,
    cpu_parallelism,
    kaggle_images,
    machine,
    median,
    table,
    versions,
    write_result,
)

GOAL_GB = 2.5


def _vm(field: str) -> int:
    """A /proc/self/status memory field in bytes (0 when unavailable)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def catalog(root: Path, workdir: Path) -> Any:
    """The project's catalog for the data_processing inputs and outputs, redirected."""
    from kedro.io import DataCatalog

    return DataCatalog.from_config(catalog_config(root, workdir, ("raw_metadata", "raw_images")))


def prepare(root: Path, workdir: Path) -> dict[str, Any]:
    """300x300 PNGs of the TRAIN split and its train/validation manifest, by the project's nodes."""
    from chest_xray.params import MetadataParams, PreprocessingParams, SplitParams, TrainingParams
    from chest_xray.pipelines.data_processing.nodes import (
        join_metadata,
        preprocess_images,
        split_dataset,
    )

    start = time.perf_counter()
    data = catalog(root, workdir)
    raw_images = data.load("raw_images")
    index, _ = join_metadata(
        data.load("raw_metadata"), raw_images, MetadataParams(), TrainingParams()
    )
    index = index[index["split"] == "train"].reset_index(drop=True)
    pngs, log = preprocess_images(
        raw_images,
        index,
        PreprocessingParams(),
        data.load("preprocessing_log_previous"),
        data.load("processed_images_previous"),
    )
    data.save("processed_images", pngs)
    data.save("preprocessing_log", log)
    manifest, _ = split_dataset(index, log, SplitParams())
    manifest.to_csv(workdir / "split_manifest.csv", index=False)
    counts = manifest["split"].value_counts().to_dict()
    return {"seconds": time.perf_counter() - start, "written": len(pngs), "splits": counts}


def stop_after(steps: int, marks: dict[str, int]) -> Any:
    """A callback ending the epoch after ``steps`` batches, noting RSS on the way in ``marks``."""
    import keras

    class StopAfter(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict | None = None) -> None:
            marks["rss_at_fit_start"] = _vm("VmRSS")

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if batch == 0:
                marks["hwm_after_first_step"] = _vm("VmHWM")
            if batch + 1 >= steps:
                marks["hwm_after_train_steps"] = _vm("VmHWM")
                self.model.stop_training = True

    return StopAfter()


def child(
    workdir: Path, steps: int, batch_size: int, mixed_precision: str, micro_batches: int
) -> dict[str, Any]:
    """Runs in a fresh process: the train_model node, stopped after ``steps`` batches."""
    import pandas as pd
    from kedro_datasets.partitions import PartitionedDataset

    from chest_xray.modeling import trainer
    from chest_xray.params import TrainingParams
    from chest_xray.pipelines.training.nodes import train_model

    baseline_rss = _vm("VmRSS")
    marks: dict[str, int] = {}
    original = trainer.training_callbacks
    # The node has no steps_per_epoch: add a stopping callback to its own list.
    trainer.training_callbacks = lambda *args: [*original(*args), stop_after(steps, marks)]

    images = PartitionedDataset(
        path=str(workdir / "images"),
        dataset="chest_xray.datasets.ImageFileDataset",
        filename_suffix=".png",
    ).load()
    manifest = pd.read_csv(workdir / "split_manifest.csv", keep_default_na=False)
    params = TrainingParams(
        epochs=1,
        batch_size=batch_size,
        mixed_precision=mixed_precision,
        micro_batches=micro_batches,
        checkpoint_dir=str(workdir / "checkpoints"),
    )
    start = time.perf_counter()
    model, history = train_model(images, manifest, params)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {
        "peak_rss_bytes": peak,
        "vm_hwm_bytes": _vm("VmHWM"),
        "rss_after_imports_bytes": baseline_rss,
        "rss_at_fit_start_bytes": marks.get("rss_at_fit_start", 0),
        "hwm_after_first_step_bytes": marks.get("hwm_after_first_step", 0),
        "hwm_after_train_steps_bytes": marks.get("hwm_after_train_steps", 0),
        "malloc_arena_max": os.environ.get("MALLOC_ARENA_MAX", ""),
        "seconds": seconds,
        "parameters": model.count_params(),
        "train_images": int((manifest["split"] == "train").sum()),
        "validation_images": int((manifest["split"] == "validation").sum()),
        "steps": steps,
        "batch_size": batch_size,
        "mixed_precision": mixed_precision,
        "micro_batches": micro_batches,
        "val_loss": history["val_loss"],
    }


def arguments() -> argparse.ArgumentParser:
    from chest_xray.params import MixedPrecision

    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=SHARED_DATA / "coronahack-dev")
    parser.add_argument("--steps", type=int, default=20, help="training batches per run")
    parser.add_argument("--batch-size", type=int, default=32, help="the recipe's is 32")
    parser.add_argument("--mixed-precision", choices=get_args(MixedPrecision), default="none")
    parser.add_argument("--micro-batches", type=int, default=1, help="gradient accumulation")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the PNGs here")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    return parser


def run_child(root: Path, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One repetition: ``child`` in a fresh interpreter, its JSON line parsed."""
    command = [sys.executable, __file__, str(root), "--child", str(workdir)]
    command += ["--steps", str(args.steps), "--batch-size", str(args.batch_size)]
    command += ["--mixed-precision", args.mixed_precision]
    command += ["--micro-batches", str(args.micro_batches)]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KEDRO_DISABLE_TELEMETRY": "1"},
    )
    if done.returncode:
        sys.exit(f"error: training child failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(root: Path, args: argparse.Namespace) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The preprocessing step's figures, and each repetition's child figures."""
    workdir = args.workdir.resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="mem-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        prepared = prepare(root, workdir)
        print(
            f"preprocessed to {workdir}: {prepared['splits']} "
            f"({prepared['written']} written, {prepared['seconds']:.0f} s)"
        )
        runs = []
        for rep in range(args.repeats):
            runs.append(run_child(root, workdir, args))
            print(
                f"rep {rep + 1}: peak RSS {runs[-1]['peak_rss_bytes'] / 1e9:.2f} GB "
                f"({runs[-1]['seconds']:.0f} s)"
            )
            shutil.rmtree(workdir / "checkpoints", ignore_errors=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return prepared, runs


def summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Medians over the repetitions (and the worst peak), in GB."""

    def gb(key: str) -> float:
        return median([r[key] for r in runs]) / 1e9

    return {
        "peak_rss_gb_median": gb("peak_rss_bytes"),
        "peak_rss_gb_worst": max(r["peak_rss_bytes"] for r in runs) / 1e9,
        "rss_at_fit_start_gb": gb("rss_at_fit_start_bytes"),
        "peak_after_first_step_gb": gb("hwm_after_first_step_bytes"),
        "peak_after_train_steps_gb": gb("hwm_after_train_steps_bytes"),
        "rss_after_imports_gb": gb("rss_after_imports_bytes"),
    }


def report(figures: dict[str, float], first: dict[str, Any], args: argparse.Namespace) -> None:
    print()
    print(
        table(
            [
                ("after imports (TensorFlow, Kedro)", figures["rss_after_imports_gb"]),
                ("images loaded, model built (fit start)", figures["rss_at_fit_start_gb"]),
                ("peak after the first training step", figures["peak_after_first_step_gb"]),
                (f"peak after {args.steps} training steps", figures["peak_after_train_steps_gb"]),
                (f"peak ({args.steps} steps + validation), median", figures["peak_rss_gb_median"]),
                ("peak, worst of the repetitions", figures["peak_rss_gb_worst"]),
            ],
            ["stage", "RSS GB"],
        )
    )
    print(
        f"\n{first['train_images']} train + {first['validation_images']} validation images at "
        f"300x300, batch {args.batch_size} in {args.micro_batches} micro-batch(es), "
        f"mixed precision {args.mixed_precision}, "
        f"{first['parameters']:,} parameters; "
        f"goal < {GOAL_GB} GB: "
        f"{'met' if figures['peak_rss_gb_worst'] < GOAL_GB else 'NOT met'}"
    )


def main() -> None:
    args = arguments().parse_args()
    if args.child:
        settings = (args.steps, args.batch_size, args.mixed_precision, args.micro_batches)
        print(json.dumps(child(args.child, *settings)))
        return
    check_repeats(args.repeats)
    parallel_before = cpu_parallelism()
    root = args.data.resolve()
    kaggle_images(root, "train")
    if not (root / "Chest_xray_Corona_Metadata.csv").is_file():
        sys.exit(f"error: {root} has no Chest_xray_Corona_Metadata.csv")
    prepared, runs = measure(root, args)
    figures = summary(runs)
    report(figures, runs[0], args)
    write_result(
        "memory",
        {
            "benchmark": "memory",
            "machine": machine(),
            "cpu_parallelism": [parallel_before, cpu_parallelism()],
            "versions": versions("tensorflow", "keras", "numpy", "kedro"),
            "data": str(root),
            "steps": args.steps,
            "batch_size": args.batch_size,
            "mixed_precision": args.mixed_precision,
            "micro_batches": args.micro_batches,
            "repeats": args.repeats,
            "preprocessing": prepared,
            **figures,
            "malloc_arena_max": os.environ.get("MALLOC_ARENA_MAX", ""),
            "goal_gb": GOAL_GB,
            "runs": runs,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
