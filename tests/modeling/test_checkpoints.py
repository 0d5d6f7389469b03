"""Multi-worker checkpoints: a folder per worker, and a resume only when all workers agree.

The two-process run itself is ``tests/integration/test_multi_worker.py``; here the
rules of ``modeling.checkpoints`` run against a stand-in for the strategy's gather over the
workers.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

tf = pytest.importorskip("tensorflow", reason="the multi-worker strategy is TensorFlow's")

from chest_xray.modeling.checkpoints import (  # noqa: E402 - after the skip
    CHECKPOINT_FINGERPRINT,
    agree_on_resume,
    claim_checkpoint_dir,
    worker_checkpoint_dir,
)
from chest_xray.modeling.distributed import TF_CONFIG  # noqa: E402
from chest_xray.params import TrainingParams  # noqa: E402

FINGERPRINT = {"data": "d", "parameters": "p", "code": "c"}


class GatheredEpochs:
    """What ``strategy.gather`` of every worker's epoch returns: ``epochs``, in task order."""

    def __init__(self, epochs: list[int]) -> None:
        self.epochs = epochs

    def run(self, fn: Any) -> Any:
        return fn()

    def gather(self, local: Any, axis: int) -> Any:
        return tf.constant(self.epochs, dtype=tf.int64)


def backed_up(folder: Path, epoch: int) -> Path:
    """A claimed checkpoint folder holding BackupAndRestore's record of ``epoch``."""
    claim_checkpoint_dir(str(folder), FINGERPRINT, logging.getLogger("test"))
    (folder / "training_metadata.json").write_text(json.dumps({"epoch": epoch, "batch": 0}))
    (folder / "latest.weights.h5").write_bytes(b"weights")
    return folder


def test_workers_that_agree_resume_their_own_backups(tmp_path: Path) -> None:
    folder = backed_up(tmp_path / "checkpoints", 3)
    agree_on_resume(GatheredEpochs([3, 3]), str(folder), FINGERPRINT, logging.getLogger("t"))
    assert (folder / "latest.weights.h5").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoints"]


def test_workers_that_disagree_all_start_afresh(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = backed_up(tmp_path / "checkpoints", 3)
    with caplog.at_level(logging.WARNING):
        agree_on_resume(GatheredEpochs([3, 2]), str(folder), FINGERPRINT, logging.getLogger("t"))
    assert "end at different epochs (3, 2): every worker starts at epoch 1" in caplog.text
    # Moved aside; the folder is this run's again, with its fingerprint and nothing to resume.
    (aside,) = tmp_path.glob("checkpoints.stale-*")
    assert (aside / "latest.weights.h5").exists()
    assert sorted(p.name for p in folder.iterdir()) == [CHECKPOINT_FINGERPRINT]
    assert json.loads((folder / CHECKPOINT_FINGERPRINT).read_text()) == FINGERPRINT


def test_a_worker_with_nothing_to_resume_moves_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    claim_checkpoint_dir(str(folder), FINGERPRINT, logging.getLogger("t"))
    agree_on_resume(GatheredEpochs([0, 2]), str(folder), FINGERPRINT, logging.getLogger("t"))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoints"]


def test_each_worker_backs_up_into_its_own_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = str(tmp_path / "checkpoints")
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    params = TrainingParams(distribution="multi_worker", checkpoint_dir=base)
    for index, expected in ((0, base), (1, f"{base}-worker-1")):
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        monkeypatch.setenv(TF_CONFIG, json.dumps(config))
        assert worker_checkpoint_dir(params) == expected
    assert worker_checkpoint_dir(TrainingParams(checkpoint_dir=base)) == base  # TF_CONFIG unread
    with pytest.raises(ValueError, match="micro_batches > 1 is not supported"):
        worker_checkpoint_dir(params.model_copy(update={"micro_batches": 2}))
