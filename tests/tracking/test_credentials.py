"""A tracking URI with ``user:password@``: it works, and the password is never printed."""

from __future__ import annotations

import base64
import http.server
import socket
import threading
from collections.abc import Iterator

import pytest

from chest_xray.tracking.server_check import TrackingServerUnreachableError, check_tracking_server
from chest_xray.tracking.uri_credentials import redact as redacted

SEEN: list[str | None] = []


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        SEEN.append(self.headers.get("Authorization"))
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()


def test_a_uri_with_credentials_reaches_the_server_with_them(server: int) -> None:
    SEEN.clear()
    check_tracking_server(f"http://alice:s%40cret@127.0.0.1:{server}")
    assert ["Basic " + base64.b64encode(b"alice:s@cret").decode()] == SEEN


def test_the_password_of_an_unreachable_server_is_not_printed() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(TrackingServerUnreachableError) as error:
        check_tracking_server(f"http://alice:hunter2@127.0.0.1:{port}", timeout=2)
    assert "hunter2" not in str(error.value)
    assert f"http://alice:***@127.0.0.1:{port}" in str(error.value)


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("http://u:pw@host:5000/x?y=1", "http://u:***@host:5000/x?y=1"),
        ("postgresql://mlflow:pw@db/mlflow", "postgresql://mlflow:***@db/mlflow"),
        ("http://host:5000", "http://host:5000"),
        ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
    ],
)
def test_redacted_hides_only_the_password(uri: str, shown: str) -> None:
    assert redacted(uri) == shown
