"""Writing a file whole or not at all, and telling local paths from object-store URLs, for
code that must not depend on Kedro (the CLI, the typed parameters).

In ``data``, the lowest room, because its users sit in every room above it: the
training parameters (``modeling.params``), the datasets and the CLI (``inference.cli``).
"""

from __future__ import annotations

import os
import secrets
import stat

from fsspec.utils import get_protocol

LOCAL_PROTOCOLS = frozenset({"file", "local"})


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


def write_atomically(path: str, data: bytes) -> None:
    """Write to a temporary file beside ``path`` and rename it into place.

    A kill or a full disk leaves the old file (or none), never a truncated one;
    the temporary file is removed on failure. Raises ``OSError``. The file gets
    the mode a plain ``open(path, "w")`` would give it (see ``_create_beside``), or
    the mode of the file it replaces: an atomic write must not change who may read.
    """
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    mode = existing_mode(path)
    fd, tmp = _create_beside(folder)
    try:
        with os.fdopen(fd, "wb") as handle:  # closes fd whatever happens next
            if mode is not None:
                os.fchmod(fd, mode)
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def existing_mode(path: str) -> int | None:
    """The permission bits of the file at ``path`` (None when there is none), for a write
    that replaces it by a rename to keep them."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None


def keep_mode(new: str, replaced: str) -> None:
    """Give ``new`` the mode of ``replaced`` before a rename puts it in its place (nothing
    when ``replaced`` does not exist: ``new`` keeps the umask's mode)."""
    mode = existing_mode(replaced)
    if mode is not None:
        os.chmod(new, mode)


_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def _create_beside(folder: str, attempts: int = 100) -> tuple[int, str]:
    """A new, empty ``.tmp-*.part`` file in ``folder``, open for writing: (descriptor, path).

    ``tempfile.mkstemp`` creates its file 0600 whatever the umask, so every output
    renamed from it was private to its owner. Here the kernel applies the umask (and
    a folder's default ACL) to ``0o666`` as for any new file: no umask is read, so
    there is no ``os.umask`` set-and-restore, whose moment of umask 0 is process-wide
    and races with any thread creating a file. ``O_EXCL`` refuses an existing name (a
    symlink too), as ``mkstemp`` does.
    """
    for _ in range(attempts):
        tmp = os.path.join(folder, f".tmp-{secrets.token_hex(8)}.part")
        try:
            return os.open(tmp, _CREATE_FLAGS, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"No free temporary file name in {folder} after {attempts} tries")
