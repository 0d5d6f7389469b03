"""Training the classifier: seeds, precision, distribution, the fit and its history.

Backend-neutral Keras 3, except the TensorFlow-only switches (op determinism,
MirroredStrategy, MultiWorkerMirroredStrategy) that are used only when the backend is
TensorFlow.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
from collections.abc import Iterator, Sequence
from typing import Any

import keras
import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from chest_xray.modeling.augmentation import build_augmentation
from chest_xray.modeling.batches import ImageBatches
from chest_xray.modeling.callbacks import training_callbacks
from chest_xray.modeling.checkpoints import prepare_checkpoint_dir
from chest_xray.modeling.distributed import (
    multi_worker_strategy,
    require_tensorflow_backend,
    worker_role,
)
from chest_xray.modeling.mixing import batch_mixer
from chest_xray.modeling.model import build_model, compile_model, without_augmentation
from chest_xray.modeling.params import ClassWeight, MixedPrecision, TrainingParams
from chest_xray.modeling.precision import resolve_precision

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
    if present.size < 2 or not np.array_equal(present, np.arange(present.size)):
        raise ValueError(
            f"balanced class weights need every label 0..K-1 (K >= 2), got {present.tolist()}"
        )
    weights = compute_class_weight("balanced", classes=present, y=labels)
    return {int(c): float(w) for c, w in zip(present, weights, strict=True)}


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
    and code (``modeling.checkpoints``); that directory is deleted after a
    successful fit, so it must be dedicated to this run. ``extra_callbacks`` run after the built-in
    ones (e.g. for experiment tracking).

    The returned model is the trained network without its augmentation layer
    (``model.without_augmentation``): what is saved, logged and predicted with.
    """
    log = log or logging.getLogger(__name__)
    classes = params.class_names
    _check_split("train", train_images, train_labels, classes)
    _check_split("validation", val_images, val_labels, classes)
    # The strategy first: a multi-worker one must exist before any TensorFlow op runs.
    with (
        _distribution_scope(params.distribution, log) as strategy,
        _precision(params.mixed_precision, log),
    ):
        set_seeds(params.seed, params.deterministic_ops)
        model = _compiled_model(train_images.shape[1:], len(train_images), params, log)
        if params.epochs == 0:
            log.info("epochs=0: returning the untrained model")
            return _trained(model, params), _history_dict(None)

        arrays = (train_images, train_labels, val_images, val_labels)
        checkpoint_dir = prepare_checkpoint_dir(arrays, params, strategy, log)
        if params.distribution == "multi_worker":
            _defer_build_to_first_step(model)
        fitted = _fit(
            model,
            arrays,
            params,
            checkpoint_dir=checkpoint_dir,
            log=log,
            extra_callbacks=extra_callbacks,
        )
        trained = _trained(model, params)
        # Equal on every worker of a multi-worker run: each holds the same mirrored weights.
        log.info("Trained weights: sha256 %s", weights_digest(trained))
    return trained, _history_dict(fitted)


def _compiled_model(
    input_shape: tuple[int, int, int], n_train: int, params: TrainingParams, log: logging.Logger
) -> keras.Model:
    """The network (with its augmentation layer) built and compiled for ``n_train`` images,
    in the current strategy's scope and precision policy."""
    log.info(
        "Training on %s (Keras %s, backend %s)",
        ", ".join(keras.distribution.list_devices()),
        keras.__version__,
        keras.backend.backend(),
    )
    augmentation = build_augmentation(params.augmentation, seed=params.seed)
    model = build_model(input_shape, params.model, augmentation, n_classes=len(params.class_names))
    compile_model(
        model,
        params.optimizer,
        accumulation_steps=params.micro_batches,
        label_smoothing=params.label_smoothing,
        steps_per_epoch=updates_per_epoch(n_train, params.batch_size),
        epochs=params.epochs,
    )
    return model


def _fit(
    model: keras.Model,
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    params: TrainingParams,
    *,
    checkpoint_dir: str,
    log: logging.Logger,
    extra_callbacks: Sequence[keras.callbacks.Callback],
) -> keras.callbacks.History:
    """``model.fit`` on the train images and labels (``arrays``' first two), validated on
    the other two, fed as reproducibly shuffled uint8 micro-batches; the built-in
    callbacks (``modeling.callbacks``, backing up into ``checkpoint_dir``) run first."""
    train_images, train_labels, val_images, val_labels = arrays
    n_classes = len(params.class_names)
    # With micro-batches, consecutive micro-batches make up one shuffled batch.
    micro = params.micro_batch_size
    targets = _targets(train_labels, n_classes)
    mixer = batch_mixer(params.augmentation, params.seed)
    train = ImageBatches(train_images, targets, micro, shuffle=True, seed=params.seed, mixer=mixer)
    val = ImageBatches(val_images, _targets(val_labels, n_classes), micro, shuffle=False, seed=0)
    callbacks = training_callbacks(params, len(train_images), log, checkpoint_dir)
    return model.fit(
        train,
        validation_data=val,
        epochs=params.epochs,
        class_weight=class_weights(train_labels, params.class_weight),
        callbacks=[*callbacks, *extra_callbacks],
        shuffle=False,  # ImageBatches shuffles rows itself, reproducibly
        verbose=0,  # one log line per epoch instead of a progress bar
    )


def _trained(model: keras.Model, params: TrainingParams) -> keras.Model:
    """What is returned: the network without augmentation; after a multi-worker run, one
    that predicts on its own worker, without waiting for the others."""
    trained = without_augmentation(model)
    if params.distribution == "multi_worker":
        _defer_build_to_first_step(trained)
    return trained


def weights_digest(model: keras.Model) -> str:
    """SHA-256 of every weight array (dtype, shape, bytes) in the model's order."""
    digest = hashlib.sha256()
    for array in model.get_weights():
        contiguous = np.ascontiguousarray(array)
        digest.update(f"{contiguous.dtype}{contiguous.shape}".encode())
        digest.update(contiguous.data)
    return digest.hexdigest()


def updates_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimizer updates in one epoch: one per batch (the last may be short), whatever
    the micro-batches; a learning-rate schedule is laid out in these."""
    return math.ceil(n_train / batch_size)


def _targets(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """What the loss compares with: 0/1 labels (sigmoid), or one-hot rows (softmax)."""
    if n_classes == 2:
        return labels
    return np.eye(n_classes, dtype=np.float32)[np.asarray(labels, dtype=np.int64)]


def predict_probabilities(model: keras.Model, images: np.ndarray, batch_size: int) -> np.ndarray:
    """P(class 1) per image, in input order, as float32 (N,); a softmax model's
    probabilities of every class, (N, K). No image: an empty (0,) array."""
    if len(images) == 0:
        return np.zeros(0, dtype=np.float32)
    batches = ImageBatches(images, None, batch_size, shuffle=False, seed=0)
    out = np.asarray(model.predict(batches, verbose=0), dtype=np.float32)
    out = out.reshape(len(images), -1)
    return out[:, 0] if out.shape[1] == 1 else out


def _check_split(
    split: str, images: np.ndarray, labels: np.ndarray, classes: Sequence[str]
) -> None:
    """Fail before any compute: a split without a class makes loss/AUC meaningless."""
    labels = np.asarray(labels)
    if len(images) != len(labels):
        raise ValueError(f"The {split} split has {len(images)} images but {len(labels)} labels")
    unknown = sorted(set(np.unique(labels).tolist()) - set(range(len(classes))))
    if unknown:
        raise ValueError(
            f"The {split} split has labels {unknown}; expected 0..{len(classes) - 1} "
            f"({', '.join(classes)})"
        )
    for index, name in enumerate(classes):
        if not np.any(labels == index):
            raise ValueError(
                f"The {split} split has no {name} images (label {index}); "
                "every class is needed to train and validate"
            )


@contextlib.contextmanager
def _precision(setting: MixedPrecision, log: logging.Logger) -> Iterator[None]:
    """The policy ``setting`` resolves to (``modeling.precision``) for the block, then the
    caller's policy again; float32 leaves the caller's policy as it is."""
    precision = resolve_precision(setting)
    log.info("Precision: %s", precision.describe())
    if precision.policy == "float32":
        yield
        return
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision.policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


@contextlib.contextmanager
def _distribution_scope(distribution: str, log: logging.Logger) -> Iterator[Any]:
    """The strategy's scope, yielding the strategy (None: Keras' default device).

    ``mirrored``: all local GPUs (a warning and the default device off TensorFlow).
    ``multi_worker``: ``MultiWorkerMirroredStrategy`` over the cluster in TF_CONFIG,
    TensorFlow only (``chest_xray.modeling.distributed``). Each global batch of ``batch_size``
    images is split between the workers (``batch_size / n_workers`` each, the remainder
    to the first ones); their gradients are summed after each worker's loss is scaled
    by ``1 / n_workers``, so one step makes the update one process would make on the
    whole batch.
    """
    if distribution not in {"mirrored", "multi_worker"}:
        yield None
        return
    if keras.backend.backend() != "tensorflow":
        if distribution == "multi_worker":
            require_tensorflow_backend(keras.backend.backend())
        log.warning(
            "distribution 'mirrored' needs the TensorFlow backend, not %s; "
            "training on the default device",
            keras.backend.backend(),
        )
        yield None
        return
    if distribution == "multi_worker":
        role = worker_role()
        strategy = multi_worker_strategy()
        log.info(
            "MultiWorkerMirroredStrategy: worker %s, %d replica(s) in sync",
            role.describe(),
            strategy.num_replicas_in_sync,
        )
    else:
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy()
        log.info("MirroredStrategy over %d replica(s)", strategy.num_replicas_in_sync)
    with strategy.scope():
        yield strategy


def _defer_build_to_first_step(model: keras.Model) -> None:
    """Let Keras build the model's metrics at its first step, as for a model made outside
    a strategy, and use the strategy of the scope it runs in.

    A model made inside a multi-worker scope builds them before ``fit`` by averaging a
    batch of images over the workers, which TensorFlow refuses for a tuple of arrays
    (tensorflow/tensorflow#72388); after training, the saved model then predicts on
    its own worker, without waiting for the others.
    """
    model._distribute_strategy = None  # Keras' TensorFlow trainer: None = the current scope's


def _history_dict(fitted: keras.callbacks.History | None) -> dict[str, list[float]]:
    """Plain Python floats, so the history can go straight to JSON / MLflow."""
    if fitted is None:
        history: dict[str, list[float]] = {key: [] for key in HISTORY_KEYS}
        history["epoch"] = []
        return history
    history = {key: [float(value) for value in fitted.history.get(key, [])] for key in HISTORY_KEYS}
    history["epoch"] = [int(epoch) + 1 for epoch in fitted.epoch]
    return history
