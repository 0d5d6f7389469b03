"""Preprocessing: the project's node against the write-up's plain loop, on full-res JPEGs.

Measures, in one invocation (medians over ``--repeats``):

- images/s of the ``preprocess_images`` node with its defaults (draft decoding,
  PNG zlib level 1, a thread pool with one worker per core), run as Kedro runs
  it: in a fresh process that has imported TensorFlow, inputs loaded and
  outputs saved through datasets configured like ``conf/base/catalog.yml``,
  into an empty folder;
- images/s of the write-up's loop (open, ``convert("L")``, LANCZOS resize to
  300x300, PNG save with default settings, one image after another);
- grey-level RMS difference between the two outputs, per image;
- 1 worker against the default pool;
- a second run on the unchanged inputs (incremental: nothing to redo, but each
  PNG's digest is checked once) and a third (nothing read at all);
- how many cores the run really got (a pure-Python loop in 1 and 2 processes,
  before and after): the machine may be shared, and pool figures mean little
  without it.

Usage: python benchmarks/bench_preprocess.py [DATA] [--repeats N]
DATA defaults to ../shared/data/fullres-sample (a folder of JPEGs).
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    SHARED_DATA,
    base_parser,
    catalog_config,
    check_repeats,
    cpu_parallelism,
    machine,
    median,
    require_dir,
    table,
    timed,
    versions,
    write_result,
)

TARGET = (300, 300)


# --------------------------------------------------------------------------- the two paths


def write_up_loop(files: list[Path], out_dir: Path) -> None:
    """The write-up's preprocessing, as published: serial, full decode, default PNG."""
    from PIL import Image

    out_dir.mkdir(parents=True, exist_ok=True)
    for file in files:
        image = Image.open(file).convert("L")
        image = image.resize(TARGET, Image.Resampling.LANCZOS)
        image.save(out_dir / f"{file.stem}.png")


@functools.cache
def _catalog_config(out_dir: Path) -> dict[str, Any]:
    """The preprocessing node's catalog entries as ``kedro run`` resolves them, outputs in
    ``out_dir``; resolved once per folder: ``kedro run`` reads its config at start-up too."""
    return catalog_config(out_dir, out_dir, ("raw_images",))


def make_catalog(source: Path, out_dir: Path) -> Any:
    """A DataCatalog of those entries, the raw folder being ``source`` (a folder of JPEGs)."""
    from kedro.io import DataCatalog

    entries = copy.deepcopy(_catalog_config(out_dir))
    entries["raw_images"]["path"] = str(source)
    return DataCatalog.from_config(entries)


def project_run(source: Path, out_dir: Path, index: Any, **overrides: Any) -> dict[str, Any]:
    """One run of the ``preprocess_images`` node, with catalog I/O, timed end to end."""
    from chest_xray.params import PreprocessingParams
    from chest_xray.pipelines.data_processing.nodes import preprocess_images

    params = PreprocessingParams(**overrides)
    start = time.perf_counter()
    catalog = make_catalog(source, out_dir)
    pngs, log = preprocess_images(
        catalog.load("raw_images"),
        index,
        params,
        catalog.load("preprocessing_log_previous"),
        catalog.load("processed_images_previous"),
    )
    catalog.save("processed_images", pngs)
    catalog.save("preprocessing_log", log)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "written": len(pngs), "ok": int((log["status"] == "ok").sum())}


def rms_differences(project_dir: Path, loop_dir: Path, files: list[Path]) -> list[float]:
    import numpy as np
    from PIL import Image

    differences = []
    for file in files:
        with (
            Image.open(project_dir / "images" / "train" / f"{file.stem}.png") as ours,
            Image.open(loop_dir / f"{file.stem}.png") as theirs,
        ):
            a = np.asarray(ours, dtype=np.float64)
            b = np.asarray(theirs, dtype=np.float64)
        if a.shape != b.shape:
            raise AssertionError(f"{file.name}: shapes differ, {a.shape} vs {b.shape}")
        differences.append(float(np.sqrt(np.mean((a - b) ** 2))))
    return differences


def child_run(source: Path, workdir: Path) -> dict[str, float]:
    """One repetition of the project's path, in a fresh process as a ``kedro run`` would be.

    Kedro is imported first (as ``kedro run`` has it loaded; a data_processing run no
    longer imports TensorFlow).
    Then: a first run into an empty folder, a second run on the unchanged
    inputs, and a 1-worker first run.
    """
    import kedro.framework.cli  # noqa: F401  loaded under `kedro run`
    import pandas as pd
    from kedro.io import DataCatalog  # noqa: F401  imported by kedro before any node runs

    files = sorted(source.glob("*.jp*g"))
    index = pd.DataFrame(
        {"image_id": [f"train/{f.stem}" for f in files], "raw_partition": [f.name for f in files]}
    )
    for folder in ("project", "one"):  # config parsing is not the node's work
        _catalog_config(workdir / folder)
    marks = _watch_outcomes()
    first = project_run(source, workdir / "project", index)
    _watch_outcomes(stop=True)
    assert first["written"] == first["ok"] == len(files), first
    second = project_run(source, workdir / "project", index)  # checks each new PNG once
    assert second["written"] == 0 and second["ok"] == first["ok"], second
    later = project_run(source, workdir / "project", index)  # reads nothing at all
    assert later["written"] == 0 and later["ok"] == first["ok"], later
    one = project_run(source, workdir / "one", index, workers=1)
    return {
        "project": first["seconds"],
        "second_run": second["seconds"],
        "later_run": later["seconds"],
        "project_1_worker": one["seconds"],
        # inside the node's preprocess_all: until the first image came back, and
        # the rate of the others after it (steady state)
        "first_image_s": marks["first"],
        "steady_images_per_s": (marks["n"] - 1) / (marks["all"] - marks["first"]),
    }


def _watch_outcomes(stop: bool = False) -> dict[str, float]:
    """Time the node's preprocess_all from outside: when the first outcome came, and the last."""
    from chest_xray.data import preprocessing as nodes  # preprocess_incrementally's helper

    if stop:
        nodes.preprocess_all = nodes.preprocess_all.__wrapped__  # type: ignore[attr-defined]
        return {}
    real = nodes.preprocess_all
    marks: dict[str, float] = {}

    @functools.wraps(real)
    def watched(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        count = 0
        for outcome in real(*args, **kwargs):
            count += 1
            if count == 1:
                marks["first"] = time.perf_counter() - start
            yield outcome
        marks["all"] = time.perf_counter() - start
        marks["n"] = count

    nodes.preprocess_all = watched
    return marks


# ---------------------------------------------------------------------------------- main


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=SHARED_DATA / "fullres-sample")
    parser.add_argument("--child-run", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    source = require_dir(args.data.resolve(), "the full-resolution JPEG sample", "*.jp*g")
    if args.child_run:
        print(json.dumps(child_run(source, args.child_run)))
        return
    check_repeats(args.repeats)
    from chest_xray.data.partitions import resolve_workers

    files = sorted(source.glob("*.jp*g"))
    cores = resolve_workers(0)
    print(f"{len(files)} images from {source}; {cores} cores; {args.repeats} repetitions")
    result = summary(files, cores, measure(source, files, args.repeats))
    report(result)
    write_result(
        "preprocess",
        {
            "benchmark": "preprocess",
            "machine": machine(),
            "versions": versions("pillow", "numpy", "kedro", "kedro-datasets", "tensorflow"),
            "data": str(source),
            "repeats": args.repeats,
            **result,
        },
        args.out,
    )


def measure(source: Path, files: list[Path], repeats: int) -> dict[str, Any]:
    """Each repetition: the cores free, the write-up's loop, then the project in a child."""
    times: dict[str, list[float]] = {
        "loop": [],
        "project": [],
        "second_run": [],
        "later_run": [],
        "project_1_worker": [],
    }
    inside: dict[str, list[float]] = {"first_image_s": [], "steady_images_per_s": []}
    parallel: list[dict[str, float]] = []
    rms: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-preprocess-") as tmp:
        for rep in range(repeats):
            root = Path(tmp) / f"rep{rep}"
            parallel.append(cpu_parallelism())
            seconds, _ = timed(functools.partial(write_up_loop, files, root / "loop"))
            times["loop"].append(seconds)
            child = _python(source, "--child-run", str(root))
            for key, value in child.items():
                (inside if key in inside else times)[key].append(value)
            if rep == 0:
                rms = rms_differences(root / "project", root / "loop", files)
            shutil.rmtree(root)
            print(
                f"rep {rep + 1}: {parallel[-1]['speedup']:.2f} cores free, loop {seconds:.2f} s, "
                f"project {child['project']:.2f} s, "
                f"second run {child['second_run']:.3f} s, later {child['later_run']:.3f} s, "
                f"1 worker {child['project_1_worker']:.2f} s"
            )
    return {"seconds": times, "inside_first_run": inside, "parallel": parallel, "rms": rms}


def summary(files: list[Path], cores: int, measured: dict[str, Any]) -> dict[str, Any]:
    """The result JSON's figures (medians, ratios, fidelity) from ``measure``'s samples."""
    times, inside, rms = measured["seconds"], measured["inside_first_run"], measured["rms"]
    n = len(files)
    rate = {key: n / median(values) for key, values in times.items()}
    steady = median(inside["steady_images_per_s"])
    worst = max(range(n), key=lambda i: rms[i])
    return {
        "cpu_parallelism": measured["parallel"],
        "cpu_parallelism_median_speedup": median([p["speedup"] for p in measured["parallel"]]),
        "images": n,
        "workers_default": cores,
        "seconds": times,
        "images_per_s": rate,
        "ratio_project_vs_loop": rate["project"] / rate["loop"],
        "goal_ratio": 5.0,
        "scaling_default_vs_1_worker": rate["project"] / rate["project_1_worker"],
        "pool_first_image_s": median(inside["first_image_s"]),
        "pool_steady_images_per_s": steady,
        "pool_steady_ratio_vs_loop": steady / rate["loop"],
        "inside_first_run": inside,
        "fidelity": {
            "mean_rms": sum(rms) / n,
            "median_rms": median(rms),
            "worst_rms": rms[worst],
            "worst_image": files[worst].name,
            "over_1": sum(r > 1 for r in rms),
        },
        "goal_mean_rms": 1.0,
        "rms_per_image": dict(zip([f.name for f in files], rms, strict=True)),
        "second_run_share": median(times["second_run"]) / median(times["project"]),
        "later_run_share": median(times["later_run"]) / median(times["project"]),
        "goal_second_run_share": 0.05,
    }


def report(result: dict[str, Any]) -> None:
    rate, times, cores = result["images_per_s"], result["seconds"], result["workers_default"]
    fidelity, speedups = result["fidelity"], [p["speedup"] for p in result["cpu_parallelism"]]
    print()
    print(
        table(
            [
                ("write-up loop (serial, full decode, PNG default)", rate["loop"], 1.0),
                (
                    f"project node, default pool ({cores} workers)",
                    rate["project"],
                    result["ratio_project_vs_loop"],
                ),
                (
                    "project node, 1 worker (in-process)",
                    rate["project_1_worker"],
                    rate["project_1_worker"] / rate["loop"],
                ),
            ],
            ["path", "images/s", "x loop"],
        )
    )
    print(
        f"\nfidelity vs loop, grey-level RMS over {result['images']} images: mean "
        f"{fidelity['mean_rms']:.3f}, worst {fidelity['worst_rms']:.3f} ({fidelity['worst_image']})"
    )
    print(
        f"scaling: {cores} workers / 1 worker = {result['scaling_default_vs_1_worker']:.2f}x; "
        "cores this run really had (2-process speedup of a CPU loop, per repetition): "
        f"median {median(speedups):.2f}, range {min(speedups):.2f}-{max(speedups):.2f}"
    )
    print(
        f"inside the {cores}-worker first run: first image back after "
        f"{result['pool_first_image_s']:.2f} s then {result['pool_steady_images_per_s']:.0f} "
        f"images/s = {result['pool_steady_ratio_vs_loop']:.1f}x loop"
    )
    print(
        f"second run on unchanged inputs (each PNG's digest checked once): "
        f"{median(times['second_run']) * 1000:.0f} ms = {result['second_run_share']:.1%} of the "
        f"first ({median(times['project']):.2f} s); later runs (nothing read): "
        f"{median(times['later_run']) * 1000:.0f} ms = {result['later_run_share']:.1%}"
    )


def _python(source: Path, *args: str) -> dict[str, Any]:
    """Run this script in a fresh interpreter and parse the JSON of its last line."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KEDRO_DISABLE_TELEMETRY": "1"}
    done = subprocess.run(
        [sys.executable, __file__, str(source), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        sys.exit(f"error: {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
