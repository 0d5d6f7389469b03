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

from kedro.config import MissingConfigException
from kedro.framework.context import KedroContext

from chest_xray.tracking.uri_credentials import (
    basic_auth,
    is_http,
    move_credentials_to_environment,
    redact,
    split_credentials,
)

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


def hand_credentials_to_mlflow(context: KedroContext, conf: dict[str, Any]) -> str | None:
    """The configured tracking URI as MLflow is to see it: an http(s) URI's user info moved
    to ``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` (``uri_credentials``), and kedro-mlflow's
    configuration (``conf``, read again by kedro-mlflow after this) and
    ``MLFLOW_TRACKING_URI`` pointed at the URI without it."""
    uri = configured_tracking_uri(conf)
    bare = move_credentials_to_environment(uri)
    if bare == uri:
        return uri
    server = {**(conf.get("server") or {}), "mlflow_tracking_uri": bare}
    context.config_loader["mlflow"] = {**conf, "server": server}  # kedro-mlflow reads this
    if os.environ.get("MLFLOW_TRACKING_URI") == uri:
        os.environ["MLFLOW_TRACKING_URI"] = str(bare)
    return bare


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
            f"MLflow store {path} ({redact(str(uri))}) cannot be used: {error}. {way_out}"
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
    """Fail fast, naming ``uri`` (its password hidden), when an http(s) server does not answer.

    Without this MLflow retries for minutes before the first write. Any HTTP
    answer (even 401/403 from a server that wants other credentials, or 404 from a
    proxy) counts as reachable: only a refused or timed-out connection, or a bad TLS
    handshake, is an error. The probe sends the basic-auth credentials MLflow will
    send (the URI's user info, else ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``). Other
    schemes (sqlite, file, databricks) are not checked.
    """
    if not uri or not is_http(uri):
        return
    bare = split_credentials(uri)[0]
    request = urllib.request.Request(bare.rstrip("/") + "/health")
    credentials = basic_auth(uri)
    if credentials is not None:
        token = base64.b64encode(":".join(credentials).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    context = None
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        context = ssl._create_unverified_context()
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context):
            return
    except urllib.error.HTTPError:
        return  # something answered
    except (urllib.error.URLError, OSError, ValueError) as err:  # ValueError: a bad port
        reason = redact(str(getattr(err, "reason", err)))
        raise TrackingServerUnreachableError(
            f"MLflow tracking server {redact(uri)} is not reachable ({reason}). Start it, "
            f"point MLFLOW_TRACKING_URI at a running server (or unset it to track to "
            f"{DEFAULT_TRACKING_URI}), or run without tracking: kedro run --env=no_tracking"
        ) from None
