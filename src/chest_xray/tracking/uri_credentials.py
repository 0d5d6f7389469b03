"""Credentials in a tracking URI (``http://alice:secret@mlflow.internal:5000``): handed to
MLflow the way it reads them, and never printed.

MLflow takes basic-auth credentials from ``MLFLOW_TRACKING_USERNAME`` and
``MLFLOW_TRACKING_PASSWORD``, not from the URI. A URI with user info left in
place reaches the server only because ``requests`` happens to read it, and then
every MLflow error prints it whole ("API request to http://alice:secret@.../api/2.0/...
failed"); urllib, which the server check used, even takes ``alice:secret@mlflow.internal``
for a host name, so a server that answered was refused as unreachable. So the
user info of an http(s) tracking URI is moved into those two variables before
kedro-mlflow connects, and MLflow, kedro-mlflow and the check see the URI without it.
Every message of this package that names a URI shows it through ``redact``.

Only http(s) URIs are rewritten: a database URI (``postgresql://mlflow:secret@db/mlflow``)
must keep its password, which SQLAlchemy reads from it; it is redacted all the same.
"""

from __future__ import annotations

import logging
import os
import re
from urllib.parse import unquote, urlsplit, urlunsplit

logger = logging.getLogger(__name__)

USERNAME_VARIABLE = "MLFLOW_TRACKING_USERNAME"
PASSWORD_VARIABLE = "MLFLOW_TRACKING_PASSWORD"
HIDDEN = "***"

# scheme://user:password@ - the password up to the authority's last "@" (a password
# with an unencoded "@" is still hidden whole), never past a "/" or a space.
_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^/@:\s]*):[^/\s]*@")


def redact(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` in it shown as
    ``***`` (``http://alice:***@mlflow.internal:5000``): a URI, a message, a traceback."""
    return _PASSWORD.sub(rf"\g<head>:{HIDDEN}@", text)


def split_credentials(uri: str) -> tuple[str, str | None, str | None]:
    """``(uri without user info, user name, password)``, the two decoded (``%40`` -> ``@``);
    ``(uri, None, None)`` for a URI without user info or one that cannot be parsed."""
    try:
        parts = urlsplit(uri)
    except ValueError:  # e.g. an unclosed "[" of an IPv6 host: the caller's check names it
        return uri, None, None
    if "@" not in parts.netloc:
        return uri, None, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    bare = urlunsplit(parts._replace(netloc=host))
    return bare, unquote(user), unquote(password) if colon else None


def is_http(uri: str | None) -> bool:
    """True for an ``http://`` or ``https://`` URI (a tracking server)."""
    return bool(uri) and str(uri).lower().startswith(("http://", "https://"))


def move_credentials_to_environment(uri: str | None) -> str | None:
    """``uri`` without its user info, which goes to ``MLFLOW_TRACKING_USERNAME`` and
    ``MLFLOW_TRACKING_PASSWORD`` (the URI's win over values already there: it is the
    more specific setting). Anything but an http(s) URI with user info is returned as is."""
    if uri is None or not is_http(uri):
        return uri
    bare, user, password = split_credentials(uri)
    if user is None:
        return uri
    if user:
        os.environ[USERNAME_VARIABLE] = user
    if password is not None:
        os.environ[PASSWORD_VARIABLE] = password
    logger.info(
        "MLflow tracking URI %s: its credentials are passed to MLflow as %s and %s",
        redact(uri),
        USERNAME_VARIABLE,
        PASSWORD_VARIABLE,
    )
    return bare


def basic_auth(uri: str) -> tuple[str, str] | None:
    """The user name and password for ``uri``: its own user info, else the two
    ``MLFLOW_TRACKING_*`` variables; None when either is missing (MLflow then sends none)."""
    _, user, password = split_credentials(uri)
    user = user or os.environ.get(USERNAME_VARIABLE)
    password = password if password is not None else os.environ.get(PASSWORD_VARIABLE)
    return (user, password) if user and password else None
