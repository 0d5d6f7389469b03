"""Peak memory of decoding hostile images: the 16-bit ~9400x9400 PNG, one and 8 at once.

The file is a flat 16-bit greyscale field of 9400x9400 pixels, just under Pillow's
decompression-bomb limit: a few hundred KB on disk, 177 MB decoded. Each case runs
in a fresh process that imports the project, notes its resident memory (VmRSS),
decodes through ``data.imaging.prepare`` (the one path of the preprocessing, the
CLI and the served model) with the inference settings of the demo model, and
reports its peak (VmHWM) minus that baseline (after one small warm-up image, as a
server that has answered before):

- ``one``: one image, the pixel limit raised to Pillow's so it is decoded;
- ``eight``: 8 threads at once, the same, under the default decode budget
  (``CHEST_XRAY_DECODE_MEMORY_MB``), which makes them queue;
- ``eight_default_limit``: 8 at once under the default pixel limit of serving and
  the CLI (50 Mpx): refused from the header, nothing decoded.

Goal (issue #24): under 300 MB per image over the idle process, and a bounded
total however many arrive together.

Usage: python benchmarks/bench_decode_memory.py [--side 9400] [--repeats 3]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, base_parser, check_repeats, machine, median, table, versions, write_result

GOAL_MB_PER_IMAGE = 300
_MB = 1024 * 1024

_CHILD = r"""
import json, sys, threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from PIL import Image
from chest_xray.data.imaging import OutputSettings, UnreadableImageError, prepare

def vm(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0

path, count, max_pixels = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = Path(path).read_bytes()
settings = OutputSettings((224, 224))
limit = None if max_pixels == "pillow" else int(max_pixels)
# An idle process that has answered before: the lazy imports (pydicom...) are done.
small = Path(path).with_name("small.png")
Image.new("I;16", (64, 64)).save(small)
prepare(small.read_bytes(), "warm-up.png", settings)
base = vm("VmRSS")
def one(i):
    try:
        prepare(data, f"hostile{i}.png", settings, max_pixels=limit)
        return "decoded"
    except UnreadableImageError as error:
        return error.reason
with ThreadPoolExecutor(count) as pool:
    outcomes = list(pool.map(one, range(count)))
print(json.dumps({"base": base, "peak": vm("VmHWM"), "outcomes": outcomes}))
"""


def hostile_png(folder: Path, side: int) -> Path:
    """A flat 16-bit grey PNG of side x side pixels (built once per run)."""
    import numpy as np
    from PIL import Image

    path = folder / f"flat16_{side}.png"
    pixels = np.full((side, side), 1000, dtype=np.uint16)
    pixels[::97, ::89] = 40000  # a sparse pattern, so the file is not all one value
    Image.fromarray(pixels).save(path, format="PNG", compress_level=9)
    return path


def measure(path: Path, count: int, max_pixels: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(count), max_pixels],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["over_idle_mb"] = (result["peak"] - result["base"]) / _MB
    return result


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=9400)
    args = parser.parse_args()
    check_repeats(args.repeats)
    cases = {"one": (1, "pillow"), "eight": (8, "pillow"), "eight_default_limit": (8, "50000000")}
    with tempfile.TemporaryDirectory() as folder:
        path = hostile_png(Path(folder), args.side)
        size = path.stat().st_size
        runs = {
            name: [measure(path, count, limit) for _ in range(args.repeats)]
            for name, (count, limit) in cases.items()
        }
    rows = []
    for name, results in runs.items():
        count = cases[name][0]
        over = median([r["over_idle_mb"] for r in results])
        rows.append((name, count, over, over / count, results[0]["outcomes"][0]))
    print(f"{args.side}x{args.side} 16-bit PNG, {size / 1024:.0f} KB on disk")
    print(table(rows, ["case", "images", "peak over idle MB", "MB per image", "outcome"]))
    write_result(
        "decode_memory",
        {
            "file": {"side": args.side, "bytes": size},
            "goal_mb_per_image": GOAL_MB_PER_IMAGE,
            "runs": runs,
            "machine": machine(),
            "versions": versions("PIL", "numpy"),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
