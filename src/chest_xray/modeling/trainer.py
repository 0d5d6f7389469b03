"""Training the classifier: seeds, precision, distribution, callbacks and history.

Backend-neutral Keras 3, except two TensorFlow-only switches
(op determinism and MirroredStrategy) that are used only when the backend is
TensorFlow.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from chest_xray.modeling.augmentation import build_augmentation
from chest_xray.modeling.batches import ImageBatches
from chest_xray.modeling.model import build_model, compile_model, without_augmentation
from chest_xray.params import ClassWeight, TrainingParams

HISTORY_KEYS: tuple[str, ...] = ("loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc")


def set_seeds(seed: int, deterministic_ops: bool) -> None:
    """Seed Python, NumPy and the backend; optionally ask TF for deterministic kernels.

    Op determinism costs speed (and is process-wide and one-way), so it is opt-in.
    """
    keras.utils.set_random_seed(seed)
    if deterministic_ops and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def class_weights(labels: np.ndarray, mode: ClassWeight) -> dict[int, float] | None:
    """Per-class loss weights for ``model.fit``; ``balanced`` is scikit-learn's rule
    (``n_samples / (n_classes * n_class)``), so each class carries the same total weight."""
    if mode == "none":
        return None
    labels = np.asarray(labels).astype(np.int64)
    present = np.unique(labels)
    if not np.array_equal(present, [0, 1]):
        raise ValueError(f"balanced class weights need both labels 0 and 1, got {present.tolist()}")
    weights = compute_class_weight("balanced", classes=present, y=labels)
    return {int(c): float(w) for c, w in zip(present, weights, strict=True)}


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
    tmp = record.with_suffix(".tmp")
    tmp.write_text(json.dumps(fingerprint, indent=2))
    tmp.replace(record)
    return False


def train_classifier(  # noqa: PLR0917 - the four arrays are the node's inputs
    train_images: np.ndarray,
    train_labels: np.ndarray,
    val_images: np.ndarray,
    val_labels: np.ndarray,
    params: TrainingParams,
    log: logging.Logger | None = None,
    *,
    extra_callbacks: Sequence[keras.callbacks.Callback] = (),
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Build, compile and fit the model; return it with a JSON-ready history.

    ``train_images`` / ``val_images`` are (N, H, W, 1) uint8 (the model
    rescales). A killed run resumes from ``params.checkpoint_dir`` at its last
    finished epoch, if the checkpoint was made from the same data, parameters
    and code (``claim_checkpoint_dir``); that directory is deleted after a
    successful fit, so it must be dedicated to this run. ``extra_callbacks`` run after the built-in
    ones (e.g. for experiment tracking).

    The returned model is the trained network without its augmentation layer
    (``model.without_augmentation``): what is saved, logged and predicted with.
    """
    log = log or logging.getLogger(__name__)
    _check_split("train", train_images, train_labels, params.classes)
    _check_split("validation", val_images, val_labels, params.classes)
    set_seeds(params.seed, params.deterministic_ops)
    log.info(
        "Training on %s (Keras %s, backend %s)",
        ", ".join(keras.distribution.list_devices()),
        keras.__version__,
        keras.backend.backend(),
    )

    with _precision(params.mixed_precision, log), _distribution_scope(params.distribution, log):
        augmentation = build_augmentation(params.augmentation, seed=params.seed)
        model = build_model(train_images.shape[1:], params.model, augmentation)
        compile_model(
            model,
            params.optimizer,
            accumulation_steps=params.micro_batches,
            label_smoothing=params.label_smoothing,
            steps_per_epoch=updates_per_epoch(len(train_images), params.batch_size),
            epochs=params.epochs,
        )
        if params.epochs == 0:
            log.info("epochs=0: returning the untrained model")
            return without_augmentation(model), _history_dict(None)

        fingerprint = checkpoint_fingerprint(
            train_images, train_labels, val_images, val_labels, params
        )
        if claim_checkpoint_dir(params.checkpoint_dir, fingerprint, log):
            log.info(
                "Resuming from the checkpoint in %s (same data, parameters and code)",
                params.checkpoint_dir,
            )
        # With micro-batches, consecutive micro-batches make up one shuffled batch.
        micro = params.micro_batch_size
        train = ImageBatches(train_images, train_labels, micro, shuffle=True, seed=params.seed)
        val = ImageBatches(val_images, val_labels, micro, shuffle=False, seed=0)
        callbacks = _callbacks(params, len(train_images), log)
        fitted = model.fit(
            train,
            validation_data=val,
            epochs=params.epochs,
            class_weight=class_weights(train_labels, params.class_weight),
            callbacks=[*callbacks, *extra_callbacks],
            shuffle=False,  # ImageBatches shuffles rows itself, reproducibly
            verbose=0,  # one log line per epoch instead of a progress bar
        )
    return without_augmentation(model), _history_dict(fitted)


def updates_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimizer updates in one epoch: one per batch (the last may be short), whatever
    the micro-batches; a learning-rate schedule is laid out in these."""
    return math.ceil(n_train / batch_size)


def predict_probabilities(model: keras.Model, images: np.ndarray, batch_size: int) -> np.ndarray:
    """P(class 1) per image, in input order, as float32 (N,)."""
    if len(images) == 0:
        return np.zeros(0, dtype=np.float32)
    batches = ImageBatches(images, None, batch_size, shuffle=False, seed=0)
    return np.asarray(model.predict(batches, verbose=0), dtype=np.float32).reshape(-1)


def _check_split(
    split: str, images: np.ndarray, labels: np.ndarray, classes: tuple[str, str]
) -> None:
    """Fail before any compute: a split without a class makes loss/AUC meaningless."""
    labels = np.asarray(labels)
    if len(images) != len(labels):
        raise ValueError(f"The {split} split has {len(images)} images but {len(labels)} labels")
    unknown = sorted(set(np.unique(labels).tolist()) - {0, 1})
    if unknown:
        raise ValueError(f"The {split} split has labels {unknown}; expected 0 and 1")
    for index, name in enumerate(classes):
        if not np.any(labels == index):
            raise ValueError(
                f"The {split} split has no {name} images (label {index}); "
                "both classes are needed to train and validate"
            )


@contextlib.contextmanager
def _precision(mixed: str, log: logging.Logger) -> Iterator[None]:
    """A mixed_<mixed> policy for the duration of the block, then the caller's policy again."""
    if mixed == "none":
        yield
        return
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(f"mixed_{mixed}")
    log.info("Mixed precision: mixed_%s", mixed)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


@contextlib.contextmanager
def _distribution_scope(distribution: str, log: logging.Logger) -> Iterator[None]:
    """A MirroredStrategy scope (all local GPUs) where asked for and possible."""
    if distribution != "mirrored":
        yield
        return
    if keras.backend.backend() != "tensorflow":
        log.warning(
            "distribution 'mirrored' needs the TensorFlow backend, not %s; "
            "training on the default device",
            keras.backend.backend(),
        )
        yield
        return
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy()
    log.info("MirroredStrategy over %d replica(s)", strategy.num_replicas_in_sync)
    with strategy.scope():
        yield


def _callbacks(
    params: TrainingParams, n_train: int, log: logging.Logger
) -> list[keras.callbacks.Callback]:
    """Resume-on-restart first, so later callbacks see the restored epoch."""
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.BackupAndRestore(
            backup_dir=params.checkpoint_dir, save_freq="epoch", delete_checkpoint=True
        ),
    ]
    stopping = params.early_stopping
    if stopping.enabled:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=stopping.monitor,
                patience=stopping.patience,
                restore_best_weights=stopping.restore_best_weights,
            )
        )
    callbacks.append(EpochLogger(log, n_train, params.epochs))
    return callbacks


class EpochLogger(keras.callbacks.Callback):
    """One log line per epoch: Kedro's log keeps the curve without a progress bar.

    Each record also carries the epoch's metrics (``record.epoch_metrics``, with
    ``record.epoch`` 1-based), so a logging handler can follow training live (the
    tracking hooks send them to the MLflow run) without this module knowing it.
    """

    def __init__(self, log: logging.Logger, n_images: int, epochs: int) -> None:
        super().__init__()
        self.log = log
        self.n_images = n_images
        self.epochs = epochs
        self._start = time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        seconds = time.perf_counter() - self._start
        self.log.info(
            "epoch %d/%d: loss %.4f accuracy %.4f val_loss %.4f val_accuracy %.4f "
            "(%.1f s, %.0f images/s)",
            epoch + 1,
            self.epochs,
            logs.get("loss", float("nan")),
            logs.get("accuracy", float("nan")),
            logs.get("val_loss", float("nan")),
            logs.get("val_accuracy", float("nan")),
            seconds,
            self.n_images / seconds if seconds > 0 else float("nan"),
            extra={"epoch": epoch + 1, "epoch_metrics": _scalars(logs)},
        )


def _scalars(logs: dict[str, Any]) -> dict[str, float]:
    """The epoch's metrics as plain floats (a value that is not one number is left out)."""
    scalars = {}
    for key, value in logs.items():
        with contextlib.suppress(TypeError, ValueError):
            scalars[key] = float(value)
    return scalars


def _history_dict(fitted: keras.callbacks.History | None) -> dict[str, list[float]]:
    """Plain Python floats, so the history can go straight to JSON / MLflow."""
    if fitted is None:
        history: dict[str, list[float]] = {key: [] for key in HISTORY_KEYS}
        history["epoch"] = []
        return history
    history = {key: [float(value) for value in fitted.history.get(key, [])] for key in HISTORY_KEYS}
    history["epoch"] = [int(epoch) + 1 for epoch in fitted.epoch]
    return history
