"""Local paths told from object-store URLs (``data.files``); writing a file whole is
tested through the datasets that use it (tests/datasets/test_atomic_files.py)."""

from __future__ import annotations

import pytest

from chest_xray.data.files import is_local, require_local


def test_urls_are_told_from_local_paths() -> None:
    assert all(map(is_local, ["data", "/mnt/x", "file:///mnt/x", "data/a:b"]))
    assert not any(map(is_local, ["s3://b/k", "gs://b/k", "abfs://c/k", "memory://x"]))
    assert require_local("data/x", "x", "why") == "data/x"
    with pytest.raises(ValueError, match=r"training\.checkpoint_dir must be a folder on this "):
        require_local("s3://b/ck", "training.checkpoint_dir", "scratch state")
