"""Writing a file whole or not at all, for code that must not depend on Kedro (the CLI)."""

from __future__ import annotations

import os
import tempfile


def write_atomically(path: str, data: bytes) -> None:
    """Write to a temporary file beside ``path`` and rename it into place.

    A kill or a full disk leaves the old file (or none), never a truncated one;
    the temporary file is removed on failure. Raises ``OSError``.
    """
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
