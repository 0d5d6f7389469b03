"""Local paths told from object-store URLs (``data.files``), and the mode of a file written
whole: the umask's for a new file, the old file's for a replaced one (issue #24, item 13).
That a write is whole is tested through the datasets that use it
(tests/datasets/test_atomic_files.py)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from chest_xray.data.files import is_local, keep_mode, require_local, write_atomically


def test_urls_are_told_from_local_paths() -> None:
    assert all(map(is_local, ["data", "/mnt/x", "file:///mnt/x", "data/a:b"]))
    assert not any(map(is_local, ["s3://b/k", "gs://b/k", "abfs://c/k", "memory://x"]))
    assert require_local("data/x", "x", "why") == "data/x"
    with pytest.raises(ValueError, match=r"training\.checkpoint_dir must be a folder on this "):
        require_local("s3://b/ck", "training.checkpoint_dir", "scratch state")


@pytest.fixture(params=[0o022, 0o077, 0o002], ids=lambda mask: f"umask-{mask:03o}")
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """This process's umask set to the parameter for the test, then restored."""
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_gets_the_mode_of_the_umask(tmp_path: Path, umask: int) -> None:
    """Before, every file was 0600 (``tempfile.mkstemp``), whatever the umask."""
    target = tmp_path / "sub" / "report.json"
    write_atomically(str(target), b"{}")
    assert target.read_bytes() == b"{}"
    assert mode(target) == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]


@pytest.mark.parametrize("old_mode", [0o644, 0o600, 0o640])
def test_a_replaced_file_keeps_its_mode(tmp_path: Path, umask: int, old_mode: int) -> None:
    target = tmp_path / "log.csv"
    target.write_bytes(b"old")
    target.chmod(old_mode)
    write_atomically(str(target), b"new")
    assert target.read_bytes() == b"new"
    assert mode(target) == old_mode


def test_keep_mode_copies_an_existing_files_mode_only(tmp_path: Path, umask: int) -> None:
    new, old = tmp_path / "new", tmp_path / "old"
    new.write_bytes(b"")
    keep_mode(str(new), str(tmp_path / "absent"))
    assert mode(new) == 0o666 & ~umask
    old.write_bytes(b"")
    old.chmod(0o604)
    keep_mode(str(new), str(old))
    assert mode(new) == 0o604


def test_a_taken_temporary_name_is_not_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """O_EXCL: a name that exists (a planted symlink too) is skipped, never written through."""
    from chest_xray.data import files

    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    (tmp_path / ".tmp-taken.part").symlink_to(victim)
    names = iter(["taken", "free"])
    monkeypatch.setattr(files.secrets, "token_hex", lambda n: next(names))
    write_atomically(str(tmp_path / "out"), b"data")
    assert victim.read_bytes() == b"keep"
    assert (tmp_path / "out").read_bytes() == b"data"
