"""Inference speed: full-resolution JPEGs -> probabilities, project vs naive loop; served latency.

Measures, in one invocation, with an untrained model (weights do not change the speed)
built as the CPU environment builds it (``build_model`` with ``conf/cpu``'s model and
image size, 150 px), packaged by ``save_servable_model`` and loaded back by
``load_classifier``, as ``chest-xray predict`` and the ``inference`` pipeline load it:

- throughput (images/s, median over ``--repeats``) on a folder of original JPEGs:
  the project's ``predict_files`` (a decode thread per core with JPEG draft decoding,
  batches of 32) against a naive loop (``Image.open`` -> ``convert("L")`` -> LANCZOS
  resize from a full decode -> ``model.predict`` on one image at a time), and the ratio;
- the largest difference between the two paths' probabilities (they differ only by the
  draft decoding) and between their pixels;
- where the time goes, serially on one thread: decoding and resizing per image (draft
  and full decode), the network per image in batches of 32, and one ``model.predict``
  or ``predict_on_batch`` call on a single image;
- the served model: ``mlflow models serve`` on the package, then one-image requests
  (base64 JPEG in the ``image`` column, POST /invocations), after 10 warm-up
  requests: p50, p95 and mean latency in ms, as the client sees it;
- the machine (CPU model, cores, CPU flags), how many cores were free, the versions.

Usage: python benchmarks/bench_inference.py [--images DIR] [--image-size N] [--repeats N]
    [--requests N] [--json OUT]
DIR defaults to ../shared/data/fullres-sample (searched recursively for JPEGs).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from _common import (
    REPO,
    SHARED_DATA,
    base_parser,
    check_repeats,
    cpu_flags,
    cpu_parallelism,
    machine,
    median,
    size_argument,
    table,
    timed,
    versions,
    write_result,
)
from _served_latency import report_served, served

BATCH = 32
JPEG_SUFFIXES = {".jpg", ".jpeg"}
# The /proc/cpuinfo flags that decide TensorFlow's (oneDNN) and Pillow's speed.
# ------------------------------------------------------------------------------ setup


def cpu_settings() -> dict[str, Any]:
    """The CPU environment's parameters (conf/base + conf/cpu), as ``kedro run --env=cpu``."""
    from kedro.config import OmegaConfigLoader

    from chest_xray.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(conf_source=str(REPO / "conf"), env="cpu", **CONFIG_LOADER_ARGS)
    return dict(loader["parameters"])


def jpeg_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in JPEG_SUFFIXES)


# ------------------------------------------------------------------------- the two paths


def project_path(files: list[Path], root: Path, classifier: Any) -> np.ndarray:
    """``predict_files`` as ``chest-xray predict`` calls it: P(positive), in ``files``' order."""
    from chest_xray.inference.batch import predict_files

    names = [str(f.relative_to(root)) for f in files]
    loaders = {name: f.read_bytes for name, f in zip(names, files, strict=True)}
    result = predict_files(loaders, classifier, batch_size=BATCH, workers=0)
    if len(result.skipped):
        raise SystemExit(f"error: the project path skipped files:\n{result.skipped}")
    by_name = dict(zip(result.predictions["file"], result.predictions["probability"], strict=True))
    return np.array([by_name[name] for name in names])


def naive_pixels(file: Path, size: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8: full decode, grey, LANCZOS, as a first script would write it."""
    from PIL import Image

    height, width = size
    with Image.open(file) as image:
        return np.asarray(image.convert("L").resize((width, height), Image.Resampling.LANCZOS))


def naive_path(files: list[Path], size: tuple[int, int], model: Any) -> dict[str, Any]:
    """One image at a time through ``model.predict``; also times its two halves."""
    prob = np.empty(len(files))
    decode_s = predict_s = 0.0
    for row, file in enumerate(files):
        start = time.perf_counter()
        x = naive_pixels(file, size)
        middle = time.perf_counter()
        prob[row] = float(model.predict(x[None, ..., None], verbose=0).reshape(-1)[0])
        decode_s += middle - start
        predict_s += time.perf_counter() - middle
    return {"prob": prob, "decode_s": decode_s, "predict_s": predict_s}


# --------------------------------------------------------------------------- the split


def split_per_image(
    files: list[Path], size: tuple[int, int], classifier: Any, repeats: int
) -> dict[str, Any]:
    """Milliseconds per image of each step, serially on the calling thread (medians)."""
    model = classifier.model
    data = [f.read_bytes() for f in files]
    n = len(files)
    samples: dict[str, list[float]] = {
        "draft decode + resize (project, classifier.pixels)": [],
        "full decode + resize (naive)": [],
        f"network, batches of {BATCH} (classifier.probabilities)": [],
    }
    pixels = np.stack([classifier.pixels(d, f.name) for d, f in zip(data, files, strict=True)])
    naive = np.stack([naive_pixels(f, size) for f in files])[..., None]
    for _ in range(repeats):
        names = list(samples)
        seconds, _ = timed(
            lambda: [classifier.pixels(d, f.name) for d, f in zip(data, files, strict=True)]
        )
        samples[names[0]].append(1000 * seconds / n)
        seconds, _ = timed(lambda: [naive_pixels(f, size) for f in files])
        samples[names[1]].append(1000 * seconds / n)
        seconds, _ = timed(lambda: classifier.probabilities(pixels, BATCH))
        samples[names[2]].append(1000 * seconds / n)
    one = pixels[:1]
    calls = 30
    single: dict[str, list[float]] = {
        "model.predict, 1 image per call": [],
        "model.predict_on_batch, 1 image per call": [],
    }
    model.predict(one, verbose=0)  # warm
    model.predict_on_batch(one)
    for _ in range(repeats):
        seconds, _ = timed(lambda: [model.predict(one, verbose=0) for _ in range(calls)])
        single["model.predict, 1 image per call"].append(1000 * seconds / calls)
        seconds, _ = timed(lambda: [model.predict_on_batch(one) for _ in range(calls)])
        single["model.predict_on_batch, 1 image per call"].append(1000 * seconds / calls)
    diff = pixels.astype(np.float64) - naive.astype(np.float64)
    rms = np.sqrt((diff**2).reshape(n, -1).mean(axis=1))
    return {
        "ms_per_image": {k: median(v) for k, v in {**samples, **single}.items()},
        "samples_ms": {**samples, **single},
        "pixel_rms_project_vs_naive": {"mean": float(rms.mean()), "max": float(rms.max())},
    }


# ------------------------------------------------------------------------------ main


def arguments() -> argparse.ArgumentParser:
    parser = base_parser(__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--images",
        type=Path,
        default=SHARED_DATA / "fullres-sample",
        help="folder of original JPEGs, searched recursively (default: %(default)s)",
    )
    parser.add_argument(
        "--image-size",
        type=size_argument,
        default=None,
        help="model input, 150 or HxW (default: conf/cpu's preprocessing.image_size)",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=200,
        help="timed requests to the served model (0: do not serve); default %(default)s",
    )
    parser.add_argument("--json", dest="out", type=Path, help="same as --out")
    return parser


def package_untrained(size: tuple[int, int] | None, package: Path) -> tuple[Any, Any, Any]:
    """An untrained CPU-environment model, packaged to ``package`` and loaded back.

    Returns (the classifier as ``chest-xray predict`` loads it, its input size, its
    ``ModelParams``).
    """
    import keras

    from chest_xray.inference.packaging import (
        ServableModel,
        load_classifier,
        save_servable_model,
    )
    from chest_xray.inference.settings import InferenceSettings
    from chest_xray.modeling.model import build_model
    from chest_xray.params import ModelParams, PreprocessingParams

    params = cpu_settings()
    preprocessing = PreprocessingParams(**params["preprocessing"])
    size = size or preprocessing.image_size
    model_params = ModelParams(**params["training"]["model"])
    settings = InferenceSettings(
        classes=tuple(params["evaluation"]["classes"]),
        image_size=size,
        resize_mode=preprocessing.resize_mode,
        jpeg_draft=preprocessing.jpeg_draft,
        threshold=0.5,
        threshold_source="benchmark (untrained model)",
    )
    keras.utils.set_random_seed(0)
    model = build_model((*size, 1), model_params)
    save_servable_model(ServableModel(model, settings), package)
    return load_classifier(str(package)), size, model_params


def time_paths(
    files: list[Path], root: Path, classifier: Any, size: tuple[int, int], repeats: int
) -> dict[str, Any]:
    """Both paths over every file, alternating, after one warm-up each."""
    net = classifier.model
    project_prob = project_path(files, root, classifier)  # warm-up
    naive = naive_path(files, size, net)  # warm-up
    seconds: dict[str, list[float]] = {"project": [], "naive": []}
    naive_split: list[dict[str, float]] = []
    for rep in range(1, repeats + 1):
        t, project_prob = timed(lambda: project_path(files, root, classifier))
        seconds["project"].append(t)
        t, naive = timed(lambda: naive_path(files, size, net))
        seconds["naive"].append(t)
        naive_split.append({"decode_s": naive["decode_s"], "predict_s": naive["predict_s"]})
        print(f"rep {rep}: project {seconds['project'][-1]:.2f} s, naive {t:.2f} s")
    return {
        "seconds": seconds,
        "naive_loop_split_s": naive_split,
        "max_abs_prob_diff_project_vs_naive": float(np.abs(project_prob - naive["prob"]).max()),
        "project_prob": project_prob,
    }


def measure(files: list[Path], root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Every figure of the result JSON but the machine's and the data's."""
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as tmp:
        package = Path(tmp) / "package"
        classifier, size, model_params = package_untrained(args.image_size, package)
        net = classifier.model
        megabytes = sum(f.stat().st_size for f in files) / 1e6
        print(
            f"{len(files)} JPEGs ({megabytes:.0f} MB) from {root}; model {size[0]}x{size[1]}, "
            f"{net.count_params():,} parameters ({model_params.head} head), package {package}"
        )
        paths = time_paths(files, root, classifier, size, args.repeats)
        project_prob = paths.pop("project_prob")
        print("timing the steps one by one...")
        split = split_per_image(files, size, classifier, args.repeats)
        serving = served(package, files, args.requests, project_prob) if args.requests else None
    from chest_xray.data.partitions import resolve_workers

    rate = {name: len(files) / median(values) for name, values in paths["seconds"].items()}
    return {
        "images": len(files),
        "megabytes": megabytes,
        "image_size": size,
        "model": {**model_params.model_dump(), "parameters": net.count_params()},
        "batch_size": BATCH,
        "threads": resolve_workers(0),
        "repeats": args.repeats,
        **paths,
        "images_per_s": rate,
        "ratio_project_vs_naive": rate["project"] / rate["naive"],
        "split": split,
        "served": serving,
    }


def report(result: dict[str, Any]) -> None:
    n, seconds, rate = result["images"], result["seconds"], result["images_per_s"]
    ratio, split = result["ratio_project_vs_naive"], result["split"]
    print()
    print(
        table(
            [
                ("naive loop (full decode, model.predict per image)", median(seconds["naive"]),
                 rate["naive"], 1.0),
                (f"project predict_files (draft decode, {result['threads']} threads, "
                 f"batch {BATCH})", median(seconds["project"]), rate["project"], ratio),
            ],
            ["path", f"s for {n} images", "images/s", "x naive"],
        )
    )  # fmt: skip
    rms = split["pixel_rms_project_vs_naive"]
    print(
        f"\nproject / naive = {ratio:.1f}x (goal >= 10x); max |P(project) - P(naive)| = "
        f"{result['max_abs_prob_diff_project_vs_naive']:.2g}, pixel RMS project vs naive mean "
        f"{rms['mean']:.2f}, max {rms['max']:.2f} grey levels"
    )
    naive_decode = median([s["decode_s"] for s in result["naive_loop_split_s"]])
    naive_predict = median([s["predict_s"] for s in result["naive_loop_split_s"]])
    print(
        f"inside the naive loop: decode + resize {1000 * naive_decode / n:.1f} ms/image, "
        f"model.predict {1000 * naive_predict / n:.1f} ms/image"
    )
    print()
    print(
        table(
            list(split["ms_per_image"].items()),
            ["step, serially on one thread", "ms per image (median)"],
        )
    )
    if result["served"] is not None:
        report_served(result["served"])


def main() -> None:
    args = arguments().parse_args()
    check_repeats(args.repeats)
    root = args.images.resolve()
    files = jpeg_files(root) if root.is_dir() else []
    if not files:
        print(
            f"skipped: no JPEG files under {root} (the full-resolution sample); "
            "pass --images DIR to point at a folder of original JPEGs"
        )
        return
    parallel_before = cpu_parallelism()
    result = measure(files, root, args)
    report(result)
    flags = cpu_flags()
    print(f"\nCPU flags: {' '.join(flags) or 'unknown'}")
    write_result(
        "inference",
        {
            "benchmark": "inference",
            "machine": {**machine(), "cpu_flags": flags},
            "cpu_parallelism": [parallel_before, cpu_parallelism()],
            "versions": versions("tensorflow", "keras", "pillow", "numpy", "mlflow"),
            "data": str(root),
            **result,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
