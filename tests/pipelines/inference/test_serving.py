"""A real ``mlflow models serve`` of the champion the package's project registered: it answers
as the pipeline, flags what is no X-ray, refuses abuse with a 4xx and keeps serving."""

from __future__ import annotations

import base64
import io
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.inference.new_images import NewImages
from tests.pipelines.inference.trained_project import Project, not_x_rays, png_bytes
from tests.processes import free_port, start_logged, stop, wait_until

pytestmark = pytest.mark.slow


def _answers_ping(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(project: Project, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow models serve`` of the champion on 127.0.0.1, paths allowed under one root."""
    port, root = free_port(), tmp_path_factory.mktemp("served")
    env = os.environ | {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # uvicorn
        "CHEST_XRAY_SERVE_ROOT": str(root),
        "CHEST_XRAY_MAX_IMAGE_BYTES": "2000000",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    command = [str(Path(sys.executable).with_name("mlflow")), "models", "serve"]
    command += ["-m", "models:/chest-xray@champion", "--env-manager", "local"]
    command += ["-h", "127.0.0.1", "-p", str(port)]
    log = tmp_path_factory.mktemp("log") / "serve.log"
    process = start_logged(command, log, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers_ping(url), process, "mlflow models serve", log)
        yield url
    finally:
        stop(process)


def post(url: str, body: bytes) -> tuple[int, dict]:  # type: ignore[type-arg]
    request = urllib.request.Request(
        f"{url}/invocations", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def images_request(column: str, *values: str) -> bytes:
    return json.dumps(
        {"dataframe_split": {"columns": [column], "data": [[v] for v in values]}}
    ).encode()


def test_the_served_champion_answers_as_the_pipeline(
    server: str, new_images: NewImages, predicted: pd.DataFrame
) -> None:
    names = sorted(new_images.readable)[:3]
    encoded = [base64.b64encode((new_images.root / n).read_bytes()).decode() for n in names]
    status, answer = post(server, images_request("image", *encoded))
    assert status == 200, answer
    prob = dict(zip(predicted["file"], predicted["probability"], strict=True))
    got = [row["probability"] for row in answer["predictions"]]
    np.testing.assert_allclose(got, [prob[n] for n in names], atol=1e-5)
    assert {row["label"] for row in answer["predictions"]} <= {"NORMAL", "PNEUMONIA", ""}


def test_the_served_champion_flags_a_blank_and_a_noise_image(server: str) -> None:
    encoded = [base64.b64encode(png_bytes(pixels)).decode() for pixels in not_x_rays().values()]
    status, answer = post(server, images_request("image", *encoded))
    assert status == 200, answer
    rows = answer["predictions"]
    assert [row["ood_flag"] for row in rows] == [True, True]
    assert [row["label"] for row in rows] == ["", ""]
    assert all(row["ood_reason"].startswith("out of distribution") for row in rows)


def test_the_server_refuses_abuse_and_keeps_serving(
    server: str, new_images: NewImages, tmp_path: Path
) -> None:
    root = Path(os.environ.get("TMPDIR", "/tmp"))
    bomb = io.BytesIO()
    Image.new("L", (1, 1)).save(bomb, format="PNG")
    bomb_bytes = _claiming(bomb.getvalue(), 20_000, 20_000)
    cases = {
        "malformed JSON": b'{"dataframe_split": ',
        "no rows": images_request("image"),
        "no image column": images_request("pixels", "x"),
        "not base64": images_request("image", "%%%"),
        "undecodable": images_request("image", base64.b64encode(b"hello").decode()),
        "oversized": images_request("image", base64.b64encode(os.urandom(2_100_000)).decode()),
        "decompression bomb": images_request("image", base64.b64encode(bomb_bytes).decode()),
        "path escape": images_request("path", "../../../etc/passwd"),
        "absolute path outside": images_request("path", str(root)),
    }
    for case, body in cases.items():
        status, answer = post(server, body)
        assert 400 <= status < 500, (case, status, answer)
        assert answer.get("message"), case
    assert "too large" in post(server, cases["oversized"])[1]["message"]
    assert "too large" in post(server, cases["decompression bomb"])[1]["message"]
    assert "outside the served root" in post(server, cases["path escape"])[1]["message"]
    # Still serving.
    image = sorted(new_images.root.rglob("*.jpeg"))[0]
    ok = post(server, images_request("image", base64.b64encode(image.read_bytes()).decode()))
    assert ok[0] == 200


def _claiming(png: bytes, width: int, height: int) -> bytes:
    """``png`` with an IHDR that claims ``width`` x ``height`` pixels (nothing decodes it)."""
    import struct
    import zlib

    header = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", 13) + header + struct.pack(">I", zlib.crc32(header))
    return png[:8] + chunk + png[8 + len(chunk) :]


def test_served_paths_stay_inside_the_root(server: str, tmp_path: Path) -> None:
    status, answer = post(server, images_request("path", "missing.png"))
    assert status == 400 and "no such file" in answer["message"]
