"""``chest-xray serve`` over HTTP: MLflow's app behind the body cap, the depth bound and
clean error answers (no echo, no traceback, no paths)."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from chest_xray.inference.pyfunc_model import OUTPUT_COLUMNS
from chest_xray.inference.serving import guarded_app, json_depth, main
from tests.data.test_hostile_images import encode, mode_image

MAX_BODY = 1_000_000


@pytest.fixture(scope="module")
def server(package: Path) -> Iterator[tuple[str, int]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = guarded_app(str(package), max_body=MAX_BODY, max_depth=32)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    for _ in range(200):
        if running.started:
            break
        threading.Event().wait(0.05)
    yield "127.0.0.1", port
    running.should_exit = True
    thread.join(10)


def post(server: tuple[str, int], body: bytes, *, chunked: bool = False) -> tuple[int, dict]:
    connection = http.client.HTTPConnection(*server, timeout=60)
    headers = {"Content-Type": "application/json"}
    if chunked:
        connection.putrequest("POST", "/invocations")
        for key, value in {**headers, "Transfer-Encoding": "chunked"}.items():
            connection.putheader(key, value)
        connection.endheaders()
        try:
            for start in range(0, len(body), 65536):
                piece = body[start : start + 65536]
                connection.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            connection.send(b"0\r\n\r\n")
        except OSError:
            pass  # the server may answer and close before the whole body is sent
    else:
        connection.request("POST", "/invocations", body=body, headers=headers)
    response = connection.getresponse()
    answer = json.loads(response.read() or b"{}")
    connection.close()
    return response.status, answer


def rows(*images: bytes) -> bytes:
    data = [[base64.b64encode(image).decode()] for image in images]
    return json.dumps({"dataframe_split": {"columns": ["image"], "data": data}}).encode()


def test_an_image_is_answered_as_by_mlflow(server: tuple[str, int]) -> None:
    status, answer = post(
        server, rows(encode(mode_image("L"), "PNG"), encode(mode_image("LAB"), "TIFF"))
    )
    assert status == 200
    assert [set(row) for row in answer["predictions"]] == [set(OUTPUT_COLUMNS)] * 2


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_cap_is_refused(server: tuple[str, int], chunked: bool) -> None:
    status, answer = post(server, b" " * (MAX_BODY + 10), chunked=chunked)
    assert status == 413
    assert answer["error_code"] == "REQUEST_TOO_LARGE"


def test_a_malformed_body_is_not_echoed(server: tuple[str, int]) -> None:
    body = b'{"dataframe_split": ' + b"A" * 600_000
    status, answer = post(server, body)
    assert status == 400
    assert len(answer["message"]) < 600 and "AAAAAAAAAA" not in answer["message"]
    assert set(answer) == {"error_code", "message"}


def test_deep_json_is_refused_before_parsing(server: tuple[str, int]) -> None:
    status, answer = post(server, b"[" * 100_000 + b"]" * 100_000)
    assert status == 400
    assert "deeper than 32" in answer["message"]


def test_a_bad_row_is_one_line_without_a_traceback_or_path(server: tuple[str, int]) -> None:
    body = json.dumps({"dataframe_split": {"columns": ["path"], "data": [["a\u0000.png"]]}})
    status, answer = post(server, body.encode())
    assert 400 <= status < 500
    assert "Traceback" not in answer["message"] and "site-packages" not in answer["message"]
    assert "stack_trace" not in answer


def test_the_depth_count_skips_strings() -> None:
    assert json_depth(b'{"a": [1, "[[[[", {"b": "]]\\"[["}]}') == 3
    assert json_depth(b"no brackets") == 0


def test_bad_arguments_are_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-m", "x", "--max-json-depth", "0"]) == 2
    assert main([]) == 2
    assert main(["-m", "no/such/package"]) == 2
    assert "no/such/package: no such model package folder" in capsys.readouterr().err
