"""``chest-xray serve``: MLflow's own scoring app for the packaged model, behind a guard.

    chest-xray serve -m models:/chest-xray@champion -p 5001

Same model, same ``/invocations`` protocol and answers as ``mlflow models serve``
(the app is MLflow's, ``mlflow.pyfunc.scoring_server.init``), because MLflow's
server cannot be configured for what a public endpoint needs. Before the app:

- the request body is capped (``--max-request-bytes``, ``CHEST_XRAY_MAX_REQUEST_BYTES``,
  default 100 MiB): a larger ``Content-Length`` is refused unread, and a body that
  streams past the cap is cut off there; 413 either way;
- JSON nested deeper than ``--max-json-depth`` (default 32) is refused with 400
  before it is parsed (Python's parser would recurse out of its stack on 100,000
  levels: a 500);

and after it, an error answer keeps MLflow's ``error_code`` and a message cut to
500 characters, with the request that MLflow quotes after ``Input:`` and any
``stack_trace`` removed: a client never gets its body echoed back or the server's
code and paths. Everything else passes through unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import numpy as np

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_REQUEST_BYTES_ENV = "CHEST_XRAY_MAX_REQUEST_BYTES"
DEFAULT_MAX_REQUEST_BYTES = 100 * 1024 * 1024  # 64 images of 1.1 MB, base64, with room
DEFAULT_MAX_JSON_DEPTH = 32  # dataframe_split is 4 deep
MAX_ERROR_MESSAGE = 500

# A JSON string (escapes included), matched without backtracking, and every byte but brackets.
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"')
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


def json_depth(body: bytes | bytearray) -> int:
    """How deep ``body``'s arrays and objects nest, counted without parsing it (C-speed:
    strings dropped by one regex pass, the brackets left summed by NumPy)."""
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def sanitised_error(body: bytes) -> bytes:
    """An error answer without the echoed request, stack trace or an overlong message."""
    try:
        error = json.loads(body)
    except ValueError:
        error = {"message": body.decode("utf-8", "replace")}
    if not isinstance(error, dict):
        error = {"message": str(error)}
    message = str(error.get("message", "")).split("\nInput:", 1)[0].strip()
    if len(message) > MAX_ERROR_MESSAGE:
        message = message[:MAX_ERROR_MESSAGE] + " ... (cut)"
    clean = {"error_code": error.get("error_code", "BAD_REQUEST"), "message": message}
    return json.dumps(clean).encode()


class GuardedApp:
    """An ASGI wrapper: the body cap and depth bound before ``app``, clean errors after."""

    def __init__(self, app: ASGIApp, *, max_body: int, max_depth: int) -> None:
        self.app, self.max_body, self.max_depth = app, max_body, max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.lower(): value for key, value in scope.get("headers", [])}
        declared = headers.get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_body:
            await _answer(send, 413, "REQUEST_TOO_LARGE", self._too_large())
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body:
                await _answer(send, 413, "REQUEST_TOO_LARGE", self._too_large())
                return
            if not message.get("more_body", False):
                break
        if b"json" in headers.get(b"content-type", b"") and json_depth(body) > self.max_depth:
            await _answer(
                send, 400, "INVALID_PARAMETER_VALUE",
                f"the JSON nests deeper than {self.max_depth} levels",
            )  # fmt: skip
            return
        await self.app(scope, _replay(bytes(body), receive), _CleanErrors(send))

    def _too_large(self) -> str:
        return f"the request is over {self.max_body:,} bytes ({MAX_REQUEST_BYTES_ENV})"


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the app the body already read, then the client's events."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class _CleanErrors:
    """A ``send`` that holds an error answer back until whole, then sends it sanitised."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.start: Message | None = None
        self.body = bytearray()

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] >= 400:
            self.start = message
            return
        if self.start is None or message["type"] != "http.response.body":
            await self.send(message)
            return
        self.body += message.get("body", b"")
        if not message.get("more_body", False):
            await _answer_raw(self.send, self.start["status"], sanitised_error(bytes(self.body)))


async def _answer(send: Send, status: int, code: str, message: str) -> None:
    await _answer_raw(send, status, json.dumps({"error_code": code, "message": message}).encode())


async def _answer_raw(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def guarded_app(
    model_uri: str, *, max_body: int, max_depth: int, trust: bool = False
) -> GuardedApp:
    """MLflow's scoring app for ``model_uri``, guarded; the package is loaded from a checked
    private copy, and only if recorded (inference/trust.py) or ``trust``."""
    from mlflow.pyfunc import scoring_server

    from chest_xray.inference.trust import verified_copy

    model = scoring_server.load_model_with_mlflow_config(str(verified_copy(model_uri, trust=trust)))
    return GuardedApp(scoring_server.init(model), max_body=max_body, max_depth=max_depth)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``chest-xray serve`` until stopped; 2 for bad arguments, 1 if the model fails to load."""
    from chest_xray.inference.cli import DEFAULT_TRACKING_URI

    parser = argparse.ArgumentParser(prog="chest-xray serve", description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", required=True, help="a package folder or MLflow URI")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5001)
    from_env = os.environ.get(MAX_REQUEST_BYTES_ENV, "")
    default_body = int(from_env) if from_env.isdigit() else DEFAULT_MAX_REQUEST_BYTES
    parser.add_argument("--max-request-bytes", type=int, default=default_body)
    parser.add_argument("--max-json-depth", type=int, default=DEFAULT_MAX_JSON_DEPTH)
    parser.add_argument(
        "--trust-package",
        action="store_true",
        help="serve a package no record holds (a package is code: it runs when loaded)",
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    if min(args.max_request_bytes, args.max_json_depth) <= 0 or not 0 < args.port < 65536:
        print("chest-xray serve: the port, limits and depth must be positive", file=sys.stderr)
        return 2
    if ":/" not in args.model and not os.path.exists(args.model):
        print(
            f"chest-xray serve: --model {args.model}: no such model package folder", file=sys.stderr
        )
        return 2
    import mlflow
    import uvicorn

    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI))
    try:
        app = guarded_app(
            args.model,
            max_body=args.max_request_bytes,
            max_depth=args.max_json_depth,
            trust=args.trust_package,
        )
    except Exception as error:  # any reason a model does not load, said in one line
        print(f"chest-xray serve: cannot load the model: {error}", file=sys.stderr)
        return 1
    uvicorn.run(app, host=args.host, port=args.port)
    return 0
