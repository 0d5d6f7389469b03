"""A tracking URI with ``user:password@`` (issue #24, item 12): it reaches a server that
wants basic auth, through the server check, kedro-mlflow and MLflow's client, and the
password is printed nowhere. The server is a stand-in on 127.0.0.1 (``http.server`` in a
thread) that answers only what kedro-mlflow asks at start."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import mlflow
import pytest
from kedro.framework.session import KedroSession
from mlflow.tracking import MlflowClient

from chest_xray.tracking import run_comparison
from chest_xray.tracking.lifecycle import RunLifecycleHooks
from chest_xray.tracking.server_check import TrackingServerUnreachableError, check_tracking_server
from chest_xray.tracking.uri_credentials import (
    move_credentials_to_environment,
    redact,
    split_credentials,
)
from tests.tracking.support import EXPERIMENT, closed_port

USER, PASSWORD = "alice", "s3cr@t:pw"  # an "@" and a ":" in it, percent-encoded in the URI
ENCODED = "s3cr%40t%3Apw"
MLFLOW_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


@dataclass
class AuthServer:
    """What the stand-in server saw: each request's path and whether its basic auth was right."""

    port: int
    requests: list[tuple[str, bool]] = field(default_factory=list)

    def uri(self, user: str = USER, password: str = ENCODED) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self.port}"


EXPERIMENT_JSON = {
    "experiment_id": "1",
    "name": EXPERIMENT,
    "artifact_location": "mlflow-artifacts:/1",
    "lifecycle_stage": "active",
}


def _handler(seen: AuthServer) -> type[BaseHTTPRequestHandler]:
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            authorised = self.headers.get("Authorization") == expected
            path = self.path.split("?", 1)[0]
            seen.requests.append((self.path, authorised))
            if not authorised:
                self._answer(401, {"error_code": "UNAUTHENTICATED"})
            elif path == "/health":
                self._answer(200, "OK")
            elif path == "/api/2.0/mlflow/experiments/get-by-name":
                self._answer(200, {"experiment": EXPERIMENT_JSON})
            else:
                self._answer(404, {"error_code": "ENDPOINT_NOT_FOUND"})

        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def auth_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[AuthServer]:
    """A basic-auth server on a free 127.0.0.1 port; MLflow's variables restored after."""
    for name in MLFLOW_VARIABLES:  # set first, so that the test's own setting is undone too
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    seen = AuthServer(port=0)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(seen))
    seen.port = server.server_port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    previous = mlflow.get_tracking_uri()
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()
        mlflow.set_tracking_uri(previous)


def test_redact_hides_every_password_and_nothing_else() -> None:
    assert redact("http://alice:secret@h:5000/x") == "http://alice:***@h:5000/x"
    assert redact("https://alice:p@ss@h") == "https://alice:***@h"  # an unencoded "@"
    assert redact(f"http://alice:{ENCODED}@h") == "http://alice:***@h"
    assert (
        redact("postgresql://mlflow:pw@db:5432/mlflow") == "postgresql://mlflow:***@db:5432/mlflow"
    )
    text = "API request to http://a:x@h1/api failed; then https://b:y@h2:1, mail c@d.org"
    hidden = "API request to http://a:***@h1/api failed; then https://b:***@h2:1, mail c@d.org"
    assert redact(text) == hidden
    for plain in ("http://h:5000/x", "sqlite:///mlflow.db", "http://token@h", "a:b@c"):
        assert redact(plain) == plain


def test_the_user_info_is_split_off_decoded() -> None:
    assert split_credentials(f"http://{USER}:{ENCODED}@h:5000/p") == (
        "http://h:5000/p",
        USER,
        PASSWORD,
    )
    assert split_credentials("http://token@h") == ("http://h", "token", None)
    assert split_credentials("http://h:5000") == ("http://h:5000", None, None)


def test_the_check_reaches_a_server_that_wants_the_uris_credentials(
    auth_server: AuthServer,
) -> None:
    """Before, urllib took "alice:...@127.0.0.1" for a host name: refused as unreachable."""
    check_tracking_server(auth_server.uri(), timeout=5)
    assert auth_server.requests == [("/health", True)]
    check_tracking_server(auth_server.uri(password="wrong"), timeout=5)  # 401: it answered
    assert auth_server.requests[-1] == ("/health", False)


def test_an_unreachable_server_is_named_without_its_password() -> None:
    uri = f"http://{USER}:{ENCODED}@127.0.0.1:{closed_port()}"
    with pytest.raises(TrackingServerUnreachableError) as raised:
        check_tracking_server(uri, timeout=2)
    message = str(raised.value)
    assert f"http://{USER}:***@127.0.0.1:" in message
    assert ENCODED not in message and PASSWORD not in message


def test_mlflow_gets_the_credentials_as_its_variables(
    auth_server: AuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = move_credentials_to_environment(auth_server.uri())
    assert bare == f"http://127.0.0.1:{auth_server.port}"
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == USER
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == PASSWORD
    experiment = MlflowClient(bare).get_experiment_by_name(EXPERIMENT)
    assert experiment is not None and experiment.experiment_id == "1"
    assert auth_server.requests and all(ok for _, ok in auth_server.requests)
    for other in ("sqlite:///mlflow.db", "postgresql://u:p@db/m", None):
        assert move_credentials_to_environment(other) == other


@pytest.mark.slow
def test_a_kedro_session_connects_with_the_uris_credentials_and_prints_no_password(
    kedro_project: Path,
    auth_server: AuthServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The project's own start: our check, then kedro-mlflow's setup (the experiment is
    looked up over HTTP), as ``kedro run`` does before any node."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", auth_server.uri())
    caplog.set_level(logging.DEBUG)
    with KedroSession.create(project_path=kedro_project, env="demo") as session:
        session.load_context()
    bare = f"http://127.0.0.1:{auth_server.port}"
    assert mlflow.get_tracking_uri() == bare
    assert os.environ["MLFLOW_TRACKING_URI"] == bare
    paths = [path.split("?", 1)[0] for path, _ in auth_server.requests]
    assert paths[0] == "/health" and "/api/2.0/mlflow/experiments/get-by-name" in paths
    assert all(ok for _, ok in auth_server.requests), auth_server.requests
    printed = caplog.text + "".join(capsys.readouterr())
    assert "alice:***@" in printed  # the log line that says where the credentials went
    assert ENCODED not in printed and PASSWORD not in printed


def test_the_error_hook_records_no_password(monkeypatch: pytest.MonkeyPatch) -> None:
    """An error that names a URI with its password (MLflow's own messages do) is recorded
    with the password hidden, in the tag and in the traceback."""
    recorded: dict[str, str] = {}

    class Client:
        def set_tag(self, run_id: str, key: str, value: str) -> None:
            recorded[key] = value

        def log_text(self, run_id: str, text: str, path: str) -> None:
            recorded[path] = text

        def get_run(self, run_id: str) -> Any:
            return type("Run", (), {"info": type("Info", (), {"status": "FAILED"})})()

    from chest_xray.tracking import lifecycle

    monkeypatch.setattr(lifecycle, "MlflowClient", Client)
    hooks = RunLifecycleHooks()
    hooks._run_id = "r1"
    try:
        raise ConnectionError(f"API request to http://{USER}:{ENCODED}@h/api failed")
    except ConnectionError as error:
        hooks.on_pipeline_error(error=error)
    assert recorded["error"] == "ConnectionError: API request to http://alice:***@h/api failed"
    assert ENCODED not in recorded["error/traceback.txt"]
    assert "http://alice:***@h/api" in recorded["error/traceback.txt"]


def test_the_runs_command_uses_and_restores_the_credentials(
    auth_server: AuthServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", auth_server.uri())
    with pytest.raises(SystemExit):
        run_comparison.parse_args(["--help"])
    assert "alice:***@" in capsys.readouterr().out
    with run_comparison.tracking_uri(auth_server.uri()):
        assert mlflow.get_experiment_by_name(EXPERIMENT) is not None
        assert mlflow.get_tracking_uri() == f"http://127.0.0.1:{auth_server.port}"
    assert all(ok for _, ok in auth_server.requests) and auth_server.requests
    assert os.environ["MLFLOW_TRACKING_URI"] == auth_server.uri()
    assert "MLFLOW_TRACKING_PASSWORD" not in os.environ
    monkeypatch.setattr(mlflow, "get_experiment_by_name", lambda name: None)
    with pytest.raises(LookupError) as raised, run_comparison.tracking_uri(auth_server.uri()):
        mlflow.set_tracking_uri(auth_server.uri())  # even if the URI had it
        run_comparison.latest_runs("nope", 1)
    assert re.search(r"alice:\*\*\*@", str(raised.value)) and ENCODED not in str(raised.value)
