"""Fail fast when the configured MLflow tracking server does not answer."""

from __future__ import annotations

import os
import ssl
import urllib.error
import urllib.request
from urllib.parse import urlparse

from kedro.config import MissingConfigException
from kedro.framework.context import KedroContext

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
HEALTH_TIMEOUT_S = 5.0


class TrackingServerUnreachableError(RuntimeError):
    """The configured MLflow tracking server did not answer: stop before any work."""


def configured_tracking_uri(context: KedroContext) -> str | None:
    """The tracking URI kedro-mlflow is about to use (mlflow.yml, else MLFLOW_TRACKING_URI)."""
    loader = context.config_loader
    patterns = getattr(loader, "config_patterns", None)  # OmegaConfigLoader's
    if patterns is not None and "mlflow" not in patterns:  # as kedro-mlflow registers it
        patterns.update({"mlflow": ["mlflow*", "mlflow*/**", "**/mlflow*"]})
    try:
        conf = loader["mlflow"] or {}
    except MissingConfigException:
        conf = {}
    server = conf.get("server") or {}
    return server.get("mlflow_tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")


def check_tracking_server(uri: str | None, timeout: float = HEALTH_TIMEOUT_S) -> None:
    """Fail fast, naming ``uri``, when an http(s) tracking server does not answer.

    Without this MLflow retries for minutes before the first write. Any HTTP
    answer (even 401/404 from a proxy) counts as reachable: only a refused or
    timed-out connection, or a bad TLS handshake, is an error. Other schemes
    (sqlite, file, databricks) are not checked.
    """
    if not uri or urlparse(uri).scheme not in {"http", "https"}:
        return
    url = uri.rstrip("/") + "/health"
    context = None
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        context = ssl._create_unverified_context()
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context):
            return
    except urllib.error.HTTPError:
        return  # something answered
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise TrackingServerUnreachableError(
            f"MLflow tracking server {uri} is not reachable ({reason}). Start it, point "
            f"MLFLOW_TRACKING_URI at a running server (or unset it to track to "
            f"{DEFAULT_TRACKING_URI}), or run without tracking: kedro run --env=no_tracking"
        ) from err
