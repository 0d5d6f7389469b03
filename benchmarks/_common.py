"""Shared helpers of the benchmark scripts: data checks, medians, the machine, JSON results.

Kept free of heavy imports: spawn-based worker processes re-import the main
script, and with it this module.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results"


def require_dir(path: Path, what: str, pattern: str = "*") -> Path:
    """Exit with a clear message (not a traceback) when the data folder is absent or empty."""
    if not path.is_dir():
        sys.exit(
            f"error: {what} not found at {path}\n"
            f"Pass its location as the first argument (see benchmarks/README.md)."
        )
    if not any(path.glob(pattern)):
        found = "is empty" if pattern == "*" else f"has no {pattern} files"
        sys.exit(f"error: {path} {found}; is it {what}?")
    return path


# Where the Kaggle download keeps its train/ and test/ image folders, under its root.
KAGGLE_IMAGES = Path("Coronahack-Chest-XRay-Dataset") / "Coronahack-Chest-XRay-Dataset"


def kaggle_images(root: Path, split: str) -> Path:
    """``<root>/Coronahack-Chest-XRay-Dataset/Coronahack-Chest-XRay-Dataset/<split>``, checked."""
    folder = root / KAGGLE_IMAGES / split
    require_dir(root, "the CoronaHack dataset (Kaggle layout)")
    return require_dir(folder, f"the {split} images of the CoronaHack dataset")


# The data_processing entries whose outputs a benchmark redirects into its own folder.
REDIRECTED_OUTPUTS = (
    "processed_images",
    "processed_images_previous",
    "preprocessing_log",
    "preprocessing_log_previous",
)


def catalog_config(raw_root: Path, workdir: Path, names: Sequence[str]) -> dict[str, Any]:
    """The project's catalog entries ``names``, as ``kedro run`` resolves them, outputs redirected.

    Read through Kedro's config loader (the entries interpolate globals, runtime parameters
    and credentials), with ``raw_root`` as the raw data; the preprocessing outputs go to
    ``workdir``. Returns the config for ``DataCatalog.from_config``.
    """
    from kedro.config import OmegaConfigLoader

    from chest_xray.settings import CONFIG_LOADER_ARGS

    runtime = {"raw_root": str(raw_root), "data_root": str(workdir)}
    loader = OmegaConfigLoader(str(REPO / "conf"), runtime_params=runtime, **CONFIG_LOADER_ARGS)
    entries = loader["catalog"]
    missing = [name for name in (*names, *REDIRECTED_OUTPUTS) if name not in entries]
    if missing:
        sys.exit(f"error: conf/base/catalog.yml has no {missing}: is this the right checkout?")
    config = {name: entries[name] for name in (*names, *REDIRECTED_OUTPUTS)}
    images, log = str(workdir / "images"), str(workdir / "preprocessing_log.csv")
    config["processed_images"]["path"] = images
    config["processed_images_previous"]["path"] = images
    config["preprocessing_log"]["filepath"] = log
    config["preprocessing_log_previous"]["dataset"]["filepath"] = log
    return config


def project_copy(into: Path) -> Path:
    """A Kedro project of its own: a copy of this repository's pyproject, conf/ and src/.

    Kedro wants the source folder inside the project (a link out of it is refused).
    """
    into.mkdir()
    shutil.copy2(REPO / "pyproject.toml", into / "pyproject.toml")
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for folder in ("conf", "src"):
        shutil.copytree(REPO / folder, into / folder, ignore=skip)
    return into


def run_in_project(project: Path, command: Sequence[str], log: Path) -> tuple[float, int, int]:
    """Run ``command`` in a project copy (``project_copy``: its own ``src/`` first on the
    path), its output into ``log``: wall seconds, exit code and the child's own peak RSS in
    bytes (``wait4``: ``Popen.wait`` reports no rusage of the child)."""
    environment = os.environ | {
        "PYTHONPATH": str(project / "src"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "KEDRO_DISABLE_TELEMETRY": "1",
    }
    start = time.perf_counter()
    with log.open("w") as out:
        child = subprocess.Popen(command, cwd=project, env=environment, stdout=out, stderr=out)
        _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    return seconds, os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024  # KiB on Linux


def log_tail(log: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a child's log, for the error that names it."""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call, on the monotonic high-resolution clock."""
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


# The vector and matrix extensions worth recording beside a figure (AVX, AVX-512, AMX ...).
FLAG_PREFIXES = ("avx", "amx", "fma", "f16c", "sha_ni", "sse4_2")


def _cpuinfo_lines() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else ``unknown``."""
    for line in _cpuinfo_lines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def cpu_flags(prefixes: tuple[str, ...] = FLAG_PREFIXES) -> list[str]:
    """The flags /proc/cpuinfo lists that start with one of ``prefixes``, sorted."""
    for line in _cpuinfo_lines():
        if line.startswith("flags"):
            return sorted(f for f in line.split(":", 1)[1].split() if f.startswith(prefixes))
    return []


def machine() -> dict[str, Any]:
    """What the figures were measured on: they mean little without it."""
    model = cpu_model()
    memory_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gb = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    cores: int | None
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    return {
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "cores": cores,
        "cpu": model,
        "memory_gb": memory_gb,
        "load_average_at_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def versions(*modules: str) -> dict[str, str]:
    """Versions of the named, already importable packages."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for module in modules:
        try:
            found[module] = version(module)
        except PackageNotFoundError:
            found[module] = "absent"
    return found


def write_result(name: str, result: dict[str, Any], out: Path | None = None) -> Path:
    """benchmarks/results/<name>.json (git-ignored), overwritten by each run."""
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nwrote {path}")
    return path


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A plain aligned text table (also valid Markdown)."""
    cells = [[str(c) for c in header], *[[_fmt(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def _burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def cpu_parallelism(processes: int = 2, n: int = 4_000_000) -> dict[str, float]:
    """How many cores this process really gets right now (the machine may be shared).

    Times a pure-Python loop in one process, then the same loop in ``processes``
    processes at once (pool started beforehand): ``speedup`` is ``processes`` on
    an idle machine and about 1 when other work holds all but one core.
    """
    import multiprocessing

    start = time.perf_counter()
    _burn(n)
    one = time.perf_counter() - start
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.map(_burn, [1] * processes)  # started and warm
        start = time.perf_counter()
        pool.map(_burn, [n] * processes, chunksize=1)
        many = time.perf_counter() - start
    return {"processes": processes, "one_s": one, "all_s": many, "speedup": processes * one / many}


def size_argument(text: str) -> tuple[int, int]:
    """``150`` (square) or ``150x120`` (height x width)."""
    parts = text.lower().split("x")
    try:
        numbers = [int(part) for part in parts]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use 150 or 150x120)") from error
    if len(numbers) == 1:
        numbers *= 2
    if len(numbers) != 2 or min(numbers) < 1:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use 150 or 150x120)")
    return numbers[0], numbers[1]


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeats", type=int, default=3, help="repetitions (median; >= 3)")
    parser.add_argument("--out", type=Path, default=None, help="result JSON path")
    return parser


def check_repeats(repeats: int) -> None:
    if repeats < 3:
        sys.exit("error: --repeats must be at least 3 (every figure is a median)")
