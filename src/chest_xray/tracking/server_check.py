"""Fail fast, before any work, when the configured MLflow store cannot be used.

Without these checks MLflow retries an unreachable server or an unwritable
folder for minutes, and a read-only or damaged SQLite file ends the run with a
bare SQLAlchemy error (no path, no way out) after the first nodes ran.
"""

from __future__ import annotations

import base64
import contextlib
import os
import sqlite3
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse, urlsplit, urlunsplit

from kedro.config import MissingConfigException
from kedro.framework.context import KedroContext

from chest_xray.data.files import redacted

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
HEALTH_TIMEOUT_S = 5.0


class TrackingServerUnreachableError(RuntimeError):
    """The configured MLflow tracking server did not answer: stop before any work."""


class TrackingStoreError(RuntimeError):
    """The configured SQLite store cannot be read or written: stop before any work."""


def mlflow_conf(context: KedroContext) -> dict[str, Any]:
    """The project's mlflow.yml (merged over environments), read as kedro-mlflow reads it."""
    loader = context.config_loader
    patterns = getattr(loader, "config_patterns", None)  # OmegaConfigLoader's
    if patterns is not None and "mlflow" not in patterns:  # as kedro-mlflow registers it
        patterns.update({"mlflow": ["mlflow*", "mlflow*/**", "**/mlflow*"]})
    try:
        return dict(loader["mlflow"] or {})
    except MissingConfigException:
        return {}


def configured_tracking_uri(conf: dict[str, Any]) -> str | None:
    """The tracking URI kedro-mlflow is about to use (mlflow.yml, else MLFLOW_TRACKING_URI)."""
    server = conf.get("server") or {}
    return server.get("mlflow_tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")


def tracks_anything(conf: dict[str, Any]) -> bool:
    """False when mlflow.yml disables tracking for every registered pipeline (no_tracking)."""
    from kedro.framework.project import pipelines

    tracking = conf.get("tracking") or {}
    disabled = set((tracking.get("disable_tracking") or {}).get("pipelines") or [])
    return not set(pipelines) <= disabled


def sqlite_path(uri: str | None) -> Path | None:
    """The file of a ``sqlite:///relative`` or ``sqlite:////absolute`` URI (None otherwise)."""
    if not uri or not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return None if path in {"", ":memory:"} else Path(path)


def check_sqlite_store(uri: str | None, timeout: float = HEALTH_TIMEOUT_S) -> None:
    """Fail in seconds, naming the file and the way out, when a SQLite store cannot be used.

    The file must be a readable and writable SQLite database (a write
    transaction is opened and rolled back), or, if it does not exist yet, its
    folder must exist and be writable. Other URIs are not checked here.
    """
    path = sqlite_path(uri)
    if path is None:
        return
    way_out = (
        "Fix or remove it, point MLFLOW_TRACKING_URI at another store, or run without "
        "tracking: kedro run --env=no_tracking"
    )
    try:
        _check_sqlite_file(path, timeout)
    except (OSError, sqlite3.Error) as error:
        raise TrackingStoreError(
            f"MLflow store {path} ({redacted(uri or '')}) cannot be used: {error}. {way_out}"
        ) from error


def _check_sqlite_file(path: Path, timeout: float) -> None:
    if not path.exists():
        folder = path.parent.resolve()
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise OSError(f"{folder} is not a writable folder to create it in")
        return
    # SQLite opens a file it may not write read-only, without a word; and it writes a
    # journal beside the file: both must be writable by this user.
    for place in (path, path.parent):
        if not os.access(place, os.R_OK | os.W_OK):
            raise OSError(f"{place.resolve()} is read-only for this user")
    with contextlib.closing(
        sqlite3.connect(f"file:{path.resolve()}?mode=rw", uri=True, timeout=timeout)
    ) as db:
        (status,) = db.execute("PRAGMA quick_check").fetchone()
        if status != "ok":
            raise sqlite3.DatabaseError(f"quick_check: {status}")
        db.execute("BEGIN IMMEDIATE")  # takes the write lock, as MLflow will
        db.execute("ROLLBACK")


def check_tracking_server(uri: str | None, timeout: float = HEALTH_TIMEOUT_S) -> None:
    """Fail fast, naming ``uri``, when an http(s) tracking server does not answer.

    Without this MLflow retries for minutes before the first write. Any HTTP
    answer (even 401/404 from a proxy) counts as reachable: only a refused or
    timed-out connection, or a bad TLS handshake, is an error. Other schemes
    (sqlite, file, databricks) are not checked.
    """
    if not uri or urlparse(uri).scheme not in {"http", "https"}:
        return
    parts = urlsplit(uri)
    # urllib takes no credentials in the URL: they go in the header, as MLflow's requests
    # sends them (user:password@ in MLFLOW_TRACKING_URI is basic authentication).
    request = urllib.request.Request(
        urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1])).rstrip("/") + "/health"
    )
    if parts.username is not None:
        token = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(token).decode())
    context = None
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        context = ssl._create_unverified_context()
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context):
            return
    except urllib.error.HTTPError:
        return  # something answered
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise TrackingServerUnreachableError(
            f"MLflow tracking server {redacted(uri)} is not reachable ({reason}). Start it, "
            f"point MLFLOW_TRACKING_URI at a running server (or unset it to track to "
            f"{DEFAULT_TRACKING_URI}), or run without tracking: kedro run --env=no_tracking"
        ) from None
