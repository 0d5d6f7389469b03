"""Which model packages may be loaded: only those this project made, or the registry records.

A package is code. Loading one imports its ``code/`` folder and runs its model file
(MLflow's models-from-code), and a package made elsewhere may hold a pickle that runs on
load: a package from a stranger can do anything its user can. So every package gets a
digest when it is made (SHA-256 over its files' relative paths and contents), recorded in
two places that a package cannot write itself:

- the **local record** (``trusted_packages.json`` in the user's data folder, or
  ``$CHEST_XRAY_TRUSTED_PACKAGES``), for every package this machine's pipelines saved or
  logged;
- the **tracking store**: the run that logged a package carries its digest as the tag
  ``chest_xray.package_sha256``, so another machine reading the same registry trusts what
  the registry holds.

Before a package is loaded it is copied to a private folder (leaving out ``__pycache__``,
which Python would otherwise prefer to the source it checks), the copy's digest is
checked against both records, and only the copy is loaded. ``--trust-package`` (CLI and
server) loads an unrecorded package anyway, on the user's word.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from chest_xray.data.files import write_atomically

STORE_ENV = "CHEST_XRAY_TRUSTED_PACKAGES"
RUN_TAG = "chest_xray.package_sha256"
_SKIPPED = "__pycache__"  # written by Python on import; never part of a package's identity
# Written by MLflow into what it downloads (the registered name and version, plain YAML
# it reads as data): the same package downloaded by run or by registry alias hashes alike.
_DOWNLOAD_NOTE = "registered_model_meta"


class UntrustedPackageError(RuntimeError):
    """A package that neither record holds: loading it would run code nobody vouched for."""


def store_path() -> Path:
    """``$CHEST_XRAY_TRUSTED_PACKAGES``, else ``$XDG_DATA_HOME/chest-xray/trusted_packages.json``
    (``~/.local/share`` when unset)."""
    if os.environ.get(STORE_ENV):
        return Path(os.environ[STORE_ENV])
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "chest-xray" / "trusted_packages.json"


def package_digest(folder: str | Path) -> str:
    """SHA-256 over every file below ``folder`` (relative path, then the file's own SHA-256),
    in sorted order, ``__pycache__`` and MLflow's download note left out: the same
    package hashes the same wherever it lies, and any changed, added or removed file
    changes it."""
    root = Path(folder)
    outer = hashlib.sha256()
    for file in sorted(_files(root)):
        inner = hashlib.sha256()  # hashlib.file_digest is 3.11+; the project supports 3.10
        with open(file, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                inner.update(block)
        outer.update(file.relative_to(root).as_posix().encode() + b"\0")
        outer.update(inner.digest())
    return outer.hexdigest()


def _files(root: Path) -> Iterator[Path]:
    for directory, folders, names in os.walk(root):
        folders[:] = [name for name in folders if name != _SKIPPED]
        for name in names:
            if name == _DOWNLOAD_NOTE and Path(directory) == root:
                continue
            path = Path(directory, name)
            if path.is_symlink() or not path.is_file():
                raise UntrustedPackageError(
                    f"{path}: a package holds regular files only (this is a link or a device)"
                )
            yield path


def record(folder: str | Path, source: str) -> str:
    """Add ``folder``'s digest to the local record (``source`` says where it came from)."""
    digest = package_digest(folder)
    path = store_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        entries = _read(path)
        entries[digest] = {"source": source, "recorded": datetime.now(timezone.utc).isoformat()}
        write_atomically(str(path), (json.dumps(entries, indent=1) + "\n").encode())
    return digest


def recorded(digest: str) -> bool:
    return digest in _read(store_path())


def _read(path: Path) -> dict[str, dict[str, str]]:
    try:
        entries = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise UntrustedPackageError(f"{path}: the record of trusted packages: {error}") from error
    return entries if isinstance(entries, dict) else {}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One writer at a time (runs side by side package models at once)."""
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def verified_copy(uri: str, *, trust: bool = False) -> Path:
    """A private copy of the package at ``uri`` (a folder or any MLflow model URI), checked.

    Raises ``UntrustedPackageError`` when neither record holds its digest, unless ``trust``.
    The copy lives until the process ends (the loaded model may still import from it).
    """
    scratch = Path(tempfile.mkdtemp(prefix="chest-xray-model-"))
    atexit.register(shutil.rmtree, scratch, True)
    local = Path(uri).exists()
    if local:
        copy = scratch / "package"
        shutil.copytree(uri, copy, symlinks=True, ignore=shutil.ignore_patterns(_SKIPPED))
    else:
        import mlflow.artifacts

        copy = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(scratch)))
    if not (copy / "MLmodel").is_file():
        raise UntrustedPackageError(f"{uri}: not a model package (no MLmodel file in it)")
    digest = package_digest(copy)
    if not trust and not recorded(digest) and (local or _registry_digest(uri) != digest):
        raise UntrustedPackageError(
            f"{uri} is not a package this machine's pipelines made and no tracking store "
            f"records it (SHA-256 {digest[:16]}...). A package is code: loading it runs it. "
            "If you trust where it came from, pass --trust-package (chest-xray predict, "
            "chest-xray serve) or --params=trust_package=true (kedro run)"
        )
    return copy


def _registry_digest(uri: str) -> str | None:
    """The digest the run that logged the model at ``uri`` (an MLflow URI) recorded as its tag
    ``chest_xray.package_sha256``, if any."""
    try:
        import mlflow
        from mlflow.models import get_model_info

        run_id = get_model_info(uri).run_id
        return mlflow.MlflowClient().get_run(run_id).data.tags.get(RUN_TAG) if run_id else None
    except Exception:  # no run, no store: the registry records nothing for it
        return None
