"""Peak memory of the served model (``chest-xray serve``) on the 16-bit ~9400x9400 PNG.

Issue #24's measure over HTTP: a tiny packaged model (untrained, 224x224: the network's
size does not change what decoding costs) served by ``chest-xray serve`` in its own
process; after one small warm-up request its resident memory (VmRSS) is the idle
baseline, and the figure is the server's peak (VmHWM) minus that baseline:

- ``one``: one request holding the hostile PNG, the server's pixel limit raised to
  Pillow's (``CHEST_XRAY_MAX_IMAGE_PIXELS``) so that it is decoded;
- ``eight``: 8 such requests at once (8 client threads), same limit, the default decode
  budget (``CHEST_XRAY_DECODE_MEMORY_MB`` 1024): the requests queue for it;
- ``eight_default_limit``: 8 at once, the default pixel limit (50 Mpx): refused from the
  header.

A fresh server per case and repetition (VmHWM only grows). Goal: under 300 MB per image
over the idle server, and a bounded total.

Usage: python benchmarks/bench_served_memory.py [--repeats 3]
"""

from __future__ import annotations

import os
import sys
import tempfile
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, base_parser, check_repeats, machine, median, table, versions, write_result
from _server import free_port, invocation_body, running_server
from bench_decode_memory import hostile_png

_MB = 1024 * 1024
PILLOW_LIMIT = 89_478_485


def tiny_package(folder: Path) -> Path:
    import keras

    from chest_xray.inference.packaging import ServableModel, save_servable_model
    from chest_xray.inference.settings import InferenceSettings
    from chest_xray.modeling.model import build_model
    from chest_xray.params import ModelParams

    keras.utils.set_random_seed(0)
    model = build_model((224, 224, 1), ModelParams(conv_filters=[4, 8], dense_units=8, dropout=0.0))
    settings = InferenceSettings(
        classes=("NORMAL", "PNEUMONIA"), image_size=(224, 224), resize_mode="stretch",
        jpeg_draft=True, threshold=0.5, threshold_source="evaluation.threshold",
    )  # fmt: skip
    path = folder / "package"
    save_servable_model(ServableModel(model, settings), path)
    return path


def _vm(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _post(port: int, body: bytes) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations", body, {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def measure(
    package: Path, hostile: bytes, small: bytes, count: int, limit: int | None
) -> dict[str, Any]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    if limit is not None:
        env["CHEST_XRAY_MAX_IMAGE_PIXELS"] = str(limit)
    command = [sys.executable, "-m", "chest_xray", "serve", "-m", str(package), "-p", str(port)]
    with running_server(command, port, env, package.parent / "serve.log") as (server, _):
        assert _post(port, invocation_body(small)) == 200, "the warm-up request failed"
        idle = _vm(server.pid, "VmRSS")
        with ThreadPoolExecutor(count) as pool:
            body = invocation_body(hostile)
            statuses = list(pool.map(lambda _: _post(port, body), range(count)))
        peak = _vm(server.pid, "VmHWM")
    return {"idle": idle, "peak": peak, "over_idle_mb": (peak - idle) / _MB, "statuses": statuses}


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=9400)
    args = parser.parse_args()
    check_repeats(args.repeats)
    import io

    from PIL import Image

    cases = {"one": (1, PILLOW_LIMIT), "eight": (8, PILLOW_LIMIT), "eight_default_limit": (8, None)}
    with tempfile.TemporaryDirectory() as folder:
        hostile = hostile_png(Path(folder), args.side).read_bytes()
        buffer = io.BytesIO()
        Image.new("L", (256, 256), 128).save(buffer, format="PNG")
        package = tiny_package(Path(folder))
        runs = {
            name: [
                measure(package, hostile, buffer.getvalue(), n, limit) for _ in range(args.repeats)
            ]
            for name, (n, limit) in cases.items()
        }
    rows = []
    for name, results in runs.items():
        count = cases[name][0]
        over = median([r["over_idle_mb"] for r in results])
        idle = median([r["idle"] / _MB for r in results])
        rows.append((name, count, idle, over, over / count, results[0]["statuses"][0]))
    print(f"{args.side}x{args.side} 16-bit PNG, {len(hostile) / 1024:.0f} KB, over HTTP")
    print(table(rows, ["case", "requests", "idle MB", "peak over idle MB", "MB per image", "HTTP"]))
    write_result(
        "served_memory",
        {"runs": runs, "machine": machine(), "versions": versions("PIL", "numpy", "mlflow")},
        args.out,
    )


if __name__ == "__main__":
    main()
