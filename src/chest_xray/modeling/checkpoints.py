"""Checkpoints a killed training resumes from, bound to the run that wrote them.

Keras' ``BackupAndRestore`` (``modeling.callbacks``) writes the state of each finished
epoch into ``training.checkpoint_dir``; this module decides whether a new run may resume
it. A fingerprint of the data, the parameters and the code is written beside the
checkpoint, and a checkpoint of another run is moved aside instead of resumed. In a
multi-worker run each worker has its own folder, and the workers resume only when all
of them would resume the same epoch. Apart from the trainer's fit, so that the rules of
resuming read (and are tested) on their own.

The checkpoint itself is Keras 3's ``latest.weights.h5`` (``BackupAndRestore`` names it):
Keras' native weights format, not the legacy HDF5 model file the project no longer
writes (models are ``.keras``, ``modeling.saving``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from chest_xray.data.files import write_atomically
from chest_xray.modeling.distributed import worker_role
from chest_xray.modeling.params import TrainingParams

# What a checkpoint was made from, written beside it: resume only when it matches.
CHECKPOINT_FINGERPRINT = "chest_xray_fingerprint.json"
# Parameters that cannot change what is trained (where it is kept, how fast it loads).
_NOT_FINGERPRINTED = {"checkpoint_dir", "loader_threads"}


def checkpoint_fingerprint(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    val_images: np.ndarray,
    val_labels: np.ndarray,
    params: TrainingParams,
) -> dict[str, str]:
    """The data (every pixel and label, in order), the parameters and the code a run trains
    with, as short digests: a checkpoint is resumed only by a run with the same three."""
    import chest_xray

    data = hashlib.sha256()
    for array in (train_images, train_labels, val_images, val_labels):
        contiguous = np.ascontiguousarray(array)
        data.update(f"{contiguous.dtype}{contiguous.shape}".encode())
        data.update(contiguous.data)
    settings = params.model_dump(mode="json", exclude=_NOT_FINGERPRINTED)
    code = f"chest_xray {chest_xray.__version__}, keras {keras.__version__}"
    return {
        "data": data.hexdigest()[:16],
        "parameters": hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[
            :16
        ],
        "code": f"{code}, backend {keras.backend.backend()}",
    }


def claim_checkpoint_dir(
    checkpoint_dir: str, fingerprint: dict[str, str], log: logging.Logger
) -> bool:
    """Make ``checkpoint_dir`` this run's; True when it holds this run's own checkpoint.

    A checkpoint written by a run with other data, parameters or code (or by a
    version that recorded nothing) is not resumed: it is moved aside to
    ``<dir>.stale-<time>`` with a log line saying why, and training starts fresh.
    """
    folder = Path(checkpoint_dir)
    record = folder / CHECKPOINT_FINGERPRINT
    if folder.exists() and any(p.name != CHECKPOINT_FINGERPRINT for p in folder.iterdir()):
        try:
            found = json.loads(record.read_text())
        except (OSError, ValueError):
            found = {}
        if found == fingerprint:
            return True
        differs = [key for key in fingerprint if found.get(key) != fingerprint[key]]
        aside = folder.with_name(f"{folder.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
        folder.rename(aside)
        log.warning(
            "Not resuming the checkpoint in %s: its %s differ from this run's (moved to %s); "
            "training starts at epoch 1",
            folder,
            " and ".join(differs) or "origin is unknown",
            aside,
        )
    folder.mkdir(parents=True, exist_ok=True)
    write_atomically(str(record), json.dumps(fingerprint, indent=2).encode())
    return False


def prepare_checkpoint_dir(
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    params: TrainingParams,
    strategy: Any,
    log: logging.Logger,
) -> str:
    """This run's checkpoint folder, claimed (``claim_checkpoint_dir``) and, in a
    multi-worker run, agreed on by every worker (``agree_on_resume``).

    ``arrays`` are the train images and labels, then the validation images and labels.
    """
    fingerprint = checkpoint_fingerprint(*arrays, params)
    checkpoint_dir = worker_checkpoint_dir(params)
    if claim_checkpoint_dir(checkpoint_dir, fingerprint, log):
        log.info(
            "Resuming from the checkpoint in %s (same data, parameters and code)",
            checkpoint_dir,
        )
    if params.distribution == "multi_worker":
        agree_on_resume(strategy, checkpoint_dir, fingerprint, log)
    return checkpoint_dir


def worker_checkpoint_dir(params: TrainingParams) -> str:
    """``training.checkpoint_dir``, or this worker's own folder in a multi-worker run."""
    if params.distribution != "multi_worker":
        return params.checkpoint_dir
    if params.micro_batches > 1:
        raise ValueError(
            "training.micro_batches > 1 is not supported with training.distribution: "
            "multi_worker (gradient accumulation under MultiWorkerMirroredStrategy is "
            "untested here); each worker already holds batch_size / n_workers images a step"
        )
    return worker_role().checkpoint_dir(params.checkpoint_dir)


def agree_on_resume(
    strategy: Any, checkpoint_dir: str, fingerprint: dict[str, str], log: logging.Logger
) -> None:
    """Resume only when every worker resumes the same epoch; else all start afresh.

    Each worker restores its own backup (Keras' BackupAndRestore has no notion of
    workers). A worker killed between two others' end-of-epoch backups, or one whose
    checkpoint was stale, would resume another epoch and its weights: the workers
    would then wait on each other for ever. The epochs are compared over the cluster.
    """
    import tensorflow as tf

    epoch = _backed_up_epoch(checkpoint_dir)
    local = strategy.run(lambda: tf.constant([epoch], dtype=tf.int64))
    epochs = [int(e) for e in strategy.gather(local, axis=0).numpy()]
    if len(set(epochs)) == 1:
        return
    if epoch:
        folder = Path(checkpoint_dir)
        folder.rename(folder.with_name(f"{folder.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}"))
        claim_checkpoint_dir(checkpoint_dir, fingerprint, log)  # afresh, with its fingerprint
    log.warning(
        "The workers' checkpoints end at different epochs (%s): every worker starts at "
        "epoch 1 (this worker's checkpoint, if any, was moved aside)",
        ", ".join(map(str, epochs)),
    )


def _backed_up_epoch(checkpoint_dir: str) -> int:
    """The epochs BackupAndRestore recorded in ``checkpoint_dir`` (0: nothing to resume)."""
    record = Path(checkpoint_dir) / "training_metadata.json"
    try:
        return int(json.loads(record.read_text()).get("epoch", 0))
    except (OSError, ValueError, AttributeError):
        return 0
