"""Local paths told from object-store URLs (``data.files``); writing a file whole is
tested through the datasets that use it (tests/datasets/test_atomic_files.py), its file
mode here."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from chest_xray.data.files import is_local, require_local, write_atomically


def test_urls_are_told_from_local_paths() -> None:
    assert all(map(is_local, ["data", "/mnt/x", "file:///mnt/x", "data/a:b"]))
    assert not any(map(is_local, ["s3://b/k", "gs://b/k", "abfs://c/k", "memory://x"]))
    assert require_local("data/x", "x", "why") == "data/x"
    with pytest.raises(ValueError, match=r"training\.checkpoint_dir must be a folder on this "):
        require_local("s3://b/ck", "training.checkpoint_dir", "scratch state")


def test_a_written_file_respects_the_umask_and_keeps_an_existing_mode(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        new = tmp_path / "new.csv"
        write_atomically(str(new), b"a")
        assert stat.S_IMODE(new.stat().st_mode) == 0o640
        existing = tmp_path / "existing.csv"
        existing.write_bytes(b"old")
        existing.chmod(0o644)
        write_atomically(str(existing), b"new")
        assert stat.S_IMODE(existing.stat().st_mode) == 0o644
        assert existing.read_bytes() == b"new"
    finally:
        os.umask(previous)
