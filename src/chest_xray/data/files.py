"""Writing a file whole or not at all, and telling local paths from object-store URLs, for
code that must not depend on Kedro (the CLI, the typed parameters).

In ``data``, the lowest room, because its users sit in every room above it: the
training parameters (``modeling.params``), the datasets and the CLI (``inference.cli``).
"""

from __future__ import annotations

import os
import stat
import tempfile
import threading
from urllib.parse import urlsplit, urlunsplit

from fsspec.utils import get_protocol

LOCAL_PROTOCOLS = frozenset({"file", "local"})
_UMASK_LOCK = threading.Lock()


def is_local(path: str) -> bool:
    """True for a plain or ``file://`` path; False for an fsspec URL (``s3://``, ``gs://``,
    ``abfs://``, ``memory://`` ...), which names an object, not a file on this machine."""
    return get_protocol(str(path)) in LOCAL_PROTOCOLS


def require_local(path: str, what: str, why: str) -> str:
    """``path`` if it is on this machine's file system; else a ``ValueError`` naming ``what``
    (the parameter or dataset) and ``why`` it must stay local."""
    if not is_local(path):
        raise ValueError(f"{what} must be a folder on this machine, not {path!r}: {why}")
    return path


def redacted(uri: str) -> str:
    """``uri`` with the password of its ``user:password@`` part replaced by ``***``, for
    any message or log line that names a store or server (a password must not be printed)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    if parts.password is None:
        return uri
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def write_atomically(path: str, data: bytes) -> None:
    """Write to a temporary file beside ``path`` and rename it into place.

    A kill or a full disk leaves the old file (or none), never a truncated one;
    the temporary file is removed on failure. Raises ``OSError``. The file gets
    the mode a plain ``open(path, "w")`` would give it: an existing file's own,
    else 0666 less the umask (``mkstemp`` makes every temporary file 0600).
    """
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    mode = _mode_for(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".part")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _mode_for(path: str) -> int:
    """The permission bits ``path`` should have once written: its own if it exists as a
    regular file, else what the umask leaves of 0666."""
    try:
        info = os.stat(path)
        if stat.S_ISREG(info.st_mode):
            return stat.S_IMODE(info.st_mode)
    except OSError:
        pass
    return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it where Linux says it (/proc), else
    set and restored under a lock (``os.umask`` is the only portable way to read it)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask
