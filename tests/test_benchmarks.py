"""The benchmark scripts' own logic (their timings are never asserted: docs/benchmarks.md)."""

from __future__ import annotations

import csv
import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chest_xray.tools.demo_data import IMAGES_DIR, DemoDatasetFacts
from tests.scripts import ROOT, load_script

BENCHMARKS = ROOT / "benchmarks"


def _script(name: str):
    return load_script(BENCHMARKS / f"{name}.py")


def _rows(root: Path) -> list[dict[str, str]]:
    with (root / "Chest_xray_Corona_Metadata.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_end_to_end_stand_in_has_every_train_row_and_new_bytes_for_test(
    demo_dataset: DemoDatasetFacts, tmp_path: Path
) -> None:
    e2e = _script("bench_end_to_end")
    source = demo_dataset.root
    counts = e2e.stand_in_layout(source, source, tmp_path / "raw")
    rows = _rows(tmp_path / "raw")
    train = [row for row in rows if row["Dataset_type"] == "TRAIN"]
    test = [row for row in rows if row["Dataset_type"] == "TEST"]
    assert (
        len(train)
        == counts["train_rows"]
        == sum(row["Dataset_type"] == "TRAIN" for row in _rows(source))
    )
    assert len(test) == counts["test_rows"] > 0
    nested = tmp_path / "raw" / e2e.KAGGLE_IMAGES
    assert (nested / "train").is_symlink()  # TRAIN linked, never copied
    for row in test:
        name = row["X_ray_image_name"]
        assert name.startswith(e2e.STAND_IN)
        made, original = (
            nested / "test" / name,
            source / e2e.KAGGLE_IMAGES / "test" / name.removeprefix(e2e.STAND_IN),
        )
        digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (made, original)]
        assert digest[0] != digest[1]  # the split would drop a copy of a TRAIN image
        with Image.open(made) as a, Image.open(original) as b:
            assert a.size == b.size
            difference = np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16))
            assert difference.mean() < 3  # the same picture (JPEG again, quality 95)


def test_the_startup_benchmark_times_a_child_and_compares_it_with_its_baseline(
    tmp_path: Path,
) -> None:
    startup = _script("bench_startup")
    sample = startup.run_once(tmp_path, "import sys; sys.exit(1)", [], 1)
    assert sample["seconds"] > 0 and sample["peak_rss_mb"] > 1
    with pytest.raises(SystemExit, match=r"(?s)exited 1, not 0.*why"):
        startup.run_once(tmp_path, "import sys; print('why'); sys.exit(1)", [], 0)
    fast, slow = {"seconds": 1.0, "peak_rss_mb": 300.0}, {"seconds": 4.0, "peak_rss_mb": 800.0}
    figures = startup.summary({"case": {"project": [fast] * 3, "keras first": [slow] * 3}})
    assert figures["case"]["speedup"] == 4.0
    assert figures["case"]["memory_saved_mb"] == 500.0


def test_the_memory_benchmark_prepares_the_split_with_the_project_nodes(
    demo_dataset: DemoDatasetFacts, tmp_path: Path
) -> None:
    """bench_memory's first step calls the data_processing nodes directly: when their
    signatures change, this fails here instead of on the first benchmark run."""
    memory = _script("bench_memory")
    prepared = memory.prepare(demo_dataset.root, tmp_path)
    train_rows = sum(row["Dataset_type"] == "TRAIN" for row in _rows(demo_dataset.root))
    assert 0 < prepared["written"] <= train_rows
    assert set(prepared["splits"]) == {"train", "validation"}
    manifest = tmp_path / "split_manifest.csv"
    with manifest.open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == sum(prepared["splits"].values())


def test_the_preprocess_benchmark_runs_the_node_through_the_resolved_catalog(
    demo_dataset: DemoDatasetFacts, tmp_path: Path
) -> None:
    """bench_preprocess reads the catalog as ``kedro run`` resolves it: its entries
    interpolate globals and credentials, which a plain YAML read left as text (the
    benchmark then failed on its first catalog)."""
    import pandas as pd

    preprocess = _script("bench_preprocess")
    train = demo_dataset.root / IMAGES_DIR / "train"
    source = tmp_path / "jpegs"
    source.mkdir()
    names = sorted(row["X_ray_image_name"] for row in _rows(demo_dataset.root))
    for name in [n for n in names if (train / n).is_file() and n.endswith(".jpeg")][:3]:
        (source / name).write_bytes((train / name).read_bytes())
    files = sorted(source.glob("*.jpeg"))
    index = pd.DataFrame(
        {"image_id": [f"train/{f.stem}" for f in files], "raw_partition": [f.name for f in files]}
    )
    first = preprocess.project_run(source, tmp_path / "out", index)
    assert first["written"] == first["ok"] == len(files) == 3
    pngs = sorted((tmp_path / "out" / "images" / "train").glob("*.png"))
    assert [png.stem for png in pngs] == [f.stem for f in files]
    again = preprocess.project_run(source, tmp_path / "out", index)
    assert again["written"] == 0 and again["ok"] == 3  # the incremental node's log was found


_PING_SERVER = """
import http.server, sys
class Ping(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/ping" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Ping).serve_forever()
"""


def test_a_benchmark_server_is_up_inside_the_block_and_stopped_after(tmp_path: Path) -> None:
    server = _script("_server")
    port = server.free_port()
    command = [sys.executable, "-c", _PING_SERVER, str(port)]
    with server.running_server(command, port, {}, tmp_path / "serve.log") as (process, ready_s):
        assert process.poll() is None and ready_s >= 0
        assert server._answers_ping(port)
    assert process.poll() is not None  # stopped, its process group with it
    assert not server._answers_ping(port)


def test_a_benchmark_server_that_dies_is_an_error_with_its_log(tmp_path: Path) -> None:
    server = _script("_server")
    port = server.free_port()
    command = [sys.executable, "-c", "import sys; print('no model here'); sys.exit(3)"]
    with (
        pytest.raises(RuntimeError, match=r"exited with 3:\s[\s\S]*no model here"),
        server.running_server(command, port, {}, tmp_path / "serve.log"),
    ):
        pytest.fail("the block must not run")


def test_a_benchmark_server_that_never_answers_times_out(tmp_path: Path) -> None:
    server = _script("_server")
    port = server.free_port()
    command = [sys.executable, "-c", "import time; time.sleep(60)"]
    with (
        pytest.raises(RuntimeError, match="did not answer /ping within 1 s"),
        server.running_server(command, port, {}, tmp_path / "serve.log", ready_timeout_s=1),
    ):
        pytest.fail("the block must not run")
