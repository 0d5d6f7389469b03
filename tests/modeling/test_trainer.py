"""Training on a tiny learnable problem: learning, history, resume, weights, checks."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from chest_xray.modeling.trainer import (
    class_weights,
    predict_probabilities,
    set_seeds,
    train_classifier,
    updates_per_epoch,
    weights_digest,
)
from chest_xray.params import (
    AugmentationParams,
    ModelParams,
    OptimizerParams,
    TrainingParams,
)

# Keras' own numpy 2 conversion inside fit(), not this project's code.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

SIZE = 32
KEYS = ["accuracy", "auc", "epoch", "loss", "val_accuracy", "val_auc", "val_loss"]


def _squares(n: int, seed: int, positive_share: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Dim noise; class 1 also has a bright 8x8 square somewhere."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 90, size=(n, SIZE, SIZE, 1), dtype=np.uint8)
    labels = (rng.random(n) < positive_share).astype(np.int64)
    for i in np.flatnonzero(labels):
        top, left = rng.integers(0, SIZE - 8, size=2)
        images[i, top : top + 8, left : left + 8] = 230
    return images, labels


def _params(tmp_path: Path, **overrides: Any) -> TrainingParams:
    settings: dict[str, Any] = {
        "epochs": 4,
        "batch_size": 16,
        "model": ModelParams(conv_filters=[8, 16], dense_units=32, head="flatten"),
        "augmentation": AugmentationParams(enabled=False),
        "optimizer": OptimizerParams(learning_rate=3e-3),
        "checkpoint_dir": str(tmp_path / "backup"),
        "seed": 1,
        # float32 whatever the machine: the figures below (batch-size invariance to 1e-5)
        # are float32's; auto's resolution is tested in test_precision.py.
        "mixed_precision": "none",
    }
    settings.update(overrides)
    return TrainingParams(**settings)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    train_images, train_labels = _squares(192, seed=0)
    val_images, val_labels = _squares(64, seed=1)
    return train_images, train_labels, val_images, val_labels


@pytest.mark.slow
def test_learns_bright_squares(
    data: tuple[np.ndarray, ...], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = logging.getLogger("test_trainer")
    with caplog.at_level(logging.INFO, logger="test_trainer"):
        model, history = train_classifier(*data, _params(tmp_path, epochs=6), log=log)

    assert sorted(history) == KEYS
    assert history["epoch"] == [1, 2, 3, 4, 5, 6]
    assert all(len(values) == 6 for values in history.values())
    assert history["val_accuracy"][-1] > 0.8
    assert history["loss"][-1] < history["loss"][0]
    json.dumps(history)  # plain python numbers
    assert all(type(v) is float for v in history["val_auc"])
    assert not (tmp_path / "backup").exists()  # deleted after a finished fit

    epoch_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert len(epoch_lines) == 6
    assert epoch_lines[0].startswith("epoch 1/6: loss ")
    assert "val_accuracy" in epoch_lines[0]
    assert "images/s" in epoch_lines[0]
    assert any("cpu:0" in r.getMessage() for r in caplog.records)

    val_images, val_labels = data[2], data[3]
    probabilities = predict_probabilities(model, val_images, batch_size=10)
    assert probabilities.shape == (64,)
    assert probabilities.dtype == np.float32
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    assert ((probabilities > 0.5) == val_labels).mean() > 0.8
    # same order and values as a plain inference pass
    np.testing.assert_allclose(
        probabilities, np.asarray(model(val_images, training=False)).reshape(-1), atol=1e-5
    )


@pytest.mark.parametrize(
    "schedule",
    [{}, {"schedule": "cosine", "warmup_epochs": 1}],
    ids=["constant", "cosine_with_warmup"],
)
def test_micro_batches_make_the_same_updates_as_whole_batches(
    data: tuple[np.ndarray, ...], tmp_path: Path, schedule: dict[str, Any]
) -> None:
    """Two micro-batches of 8 accumulate into the update of one batch of 16.

    SGD, no dropout or augmentation, 64 images (4 whole batches an epoch), so
    the only difference left is floating-point summation order. A schedule
    counts updates, not micro-batches: the same rate for each update.
    """
    images, labels = data[0][:64], data[1][:64]
    settings = {
        "epochs": 2,
        "model": ModelParams(conv_filters=[4], dense_units=8, dropout=0.0),
        "optimizer": OptimizerParams(name="sgd", learning_rate=0.05, **schedule),
    }
    whole, _ = train_classifier(images, labels, *data[2:], _params(tmp_path / "whole", **settings))
    micro, _ = train_classifier(
        images, labels, *data[2:], _params(tmp_path / "micro", micro_batches=2, **settings)
    )
    assert micro.optimizer.gradient_accumulation_steps == 2
    assert whole.optimizer.gradient_accumulation_steps is None
    for got, expected in zip(micro.get_weights(), whole.get_weights(), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    # and it trained: the weights moved away from a fresh initialisation
    fresh = train_classifier(
        images, labels, *data[2:], _params(tmp_path / "fresh", **{**settings, "epochs": 0})
    )[0]
    assert not np.allclose(fresh.get_weights()[0], whole.get_weights()[0])


def test_an_update_is_one_whole_batch() -> None:
    assert updates_per_epoch(64, 16) == 4
    assert updates_per_epoch(65, 16) == 5  # the short last batch is an update too


def test_warmup_must_leave_epochs_to_decay() -> None:
    cosine = OptimizerParams(schedule="cosine", warmup_epochs=3)
    with pytest.raises(ValueError, match=r"warmup_epochs \(3\) must be fewer than epochs \(3\)"):
        TrainingParams(epochs=3, optimizer=cosine)
    TrainingParams(epochs=4, optimizer=cosine)
    TrainingParams(epochs=0, optimizer=cosine)  # an untrained model has nothing to schedule


@pytest.mark.slow
def test_every_lever_on_still_learns(data: tuple[np.ndarray, ...], tmp_path: Path) -> None:
    """Batch norm, label smoothing, AdamW with a cosine schedule and intensity augmentation
    together: it learns, and the returned model is stock Keras without the augmentation."""
    params = _params(
        tmp_path,
        epochs=6,
        model=ModelParams(conv_filters=[8, 16], dense_units=32, batch_norm=True),
        augmentation=AugmentationParams(
            rotation_degrees=0,
            width_shift=0,
            height_shift=0,
            shear=0,
            zoom=0,
            brightness=0.1,
            contrast=0.1,
        ),
        optimizer=OptimizerParams(
            name="adamw",
            learning_rate=3e-3,
            weight_decay=1e-4,
            schedule="cosine",
            warmup_epochs=1,
        ),
        label_smoothing=0.1,
    )
    model, history = train_classifier(*data, params)
    # Training accuracy, not validation: 72 updates leave batch norm's moving
    # statistics (momentum 0.99) far from the data's, so inference lags behind.
    assert history["accuracy"][-1] > 0.9
    assert history["loss"][-1] < history["loss"][0]
    names = [layer.name for layer in model.layers]
    assert "augmentation" not in names
    assert "batch_norm_1" in names
    assert {type(layer).__module__.split(".")[0] for layer in model.layers} == {"keras"}


def test_micro_batches_must_divide_the_batch() -> None:
    with pytest.raises(ValueError, match=r"micro_batches \(3\) must divide batch_size \(32\)"):
        TrainingParams(batch_size=32, micro_batches=3)


class _Crash(keras.callbacks.Callback):
    """Stands in for a killed process after ``after`` finished epochs."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if epoch + 1 == self.after:
            raise RuntimeError("simulated crash")


@pytest.mark.slow
def test_killed_run_resumes_at_last_finished_epoch(
    data: tuple[np.ndarray, ...], tmp_path: Path
) -> None:
    params = _params(tmp_path, epochs=4, model=ModelParams(conv_filters=[4], dense_units=8))
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_classifier(*data, params, extra_callbacks=[_Crash(after=2)])
    backup = tmp_path / "backup"
    assert json.loads((backup / "training_metadata.json").read_text())["epoch"] == 2

    _, history = train_classifier(*data, params)
    assert history["epoch"] == [3, 4]  # epochs 1-2 were not run again
    assert len(history["loss"]) == 2
    assert not backup.exists()


@pytest.mark.parametrize(
    ("mixed_precision", "compute_dtype", "loss_scaling"),
    [("float16", "float16", True), ("bfloat16", "bfloat16", False)],
)
def test_zero_epochs_returns_the_untrained_model_in_the_asked_precision(
    data: tuple[np.ndarray, ...],
    tmp_path: Path,
    mixed_precision: str,
    compute_dtype: str,
    loss_scaling: bool,
) -> None:
    previous = keras.mixed_precision.global_policy().name
    params = _params(
        tmp_path, epochs=0, mixed_precision=mixed_precision, optimizer=OptimizerParams(name="sgd")
    )
    model, history = train_classifier(*data, params)
    assert keras.mixed_precision.global_policy().name == previous
    assert model.get_layer("conv_1").compute_dtype == compute_dtype
    assert model.get_layer("probability").compute_dtype == "float32"
    assert model.input_shape == (None, SIZE, SIZE, 1)
    # float16 needs loss scaling (Keras adds it); bfloat16 has float32's range
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) is loss_scaling
    assert history == {key: [] for key in KEYS}


def test_mirrored_distribution_builds_under_the_strategy(
    data: tuple[np.ndarray, ...], tmp_path: Path
) -> None:
    if keras.backend.backend() != "tensorflow":
        pytest.skip("MirroredStrategy is TensorFlow-only")
    import tensorflow as tf

    model, _ = train_classifier(*data, _params(tmp_path, epochs=0, distribution="mirrored"))
    assert isinstance(model.distribute_strategy, tf.distribute.MirroredStrategy)


@pytest.mark.parametrize(
    ("split", "missing", "message"),
    [
        ("train", 1, "train split has no PNEUMONIA images"),
        ("val", 0, "validation split has no NORMAL images"),
    ],
)
def test_missing_class_is_refused_before_training(
    data: tuple[np.ndarray, ...], tmp_path: Path, split: str, missing: int, message: str
) -> None:
    train_images, train_labels, val_images, val_labels = data
    if split == "train":
        keep = train_labels != missing
        train_images, train_labels = train_images[keep], train_labels[keep]
    else:
        keep = val_labels != missing
        val_images, val_labels = val_images[keep], val_labels[keep]
    with pytest.raises(ValueError, match=message):
        train_classifier(train_images, train_labels, val_images, val_labels, _params(tmp_path))


def test_mismatched_or_foreign_labels_are_refused(
    data: tuple[np.ndarray, ...], tmp_path: Path
) -> None:
    train_images, train_labels, val_images, val_labels = data
    with pytest.raises(ValueError, match="train split has 192 images but 191 labels"):
        train_classifier(train_images, train_labels[1:], val_images, val_labels, _params(tmp_path))
    bad = val_labels.copy()
    bad[0] = 2
    with pytest.raises(ValueError, match=r"validation split has labels \[2\]"):
        train_classifier(train_images, train_labels, val_images, bad, _params(tmp_path))


def test_balanced_class_weights_are_scikit_learns() -> None:
    labels = np.array([0, 0, 0, 1])
    assert class_weights(labels, "none") is None
    assert class_weights(labels, "balanced") == {0: pytest.approx(4 / 6), 1: pytest.approx(2.0)}
    with pytest.raises(ValueError, match=r"every label 0\.\.K-1"):
        class_weights(np.array([1, 1]), "balanced")
    three = class_weights(np.array([0, 0, 1, 2, 2, 2]), "balanced")  # multiclass: 6 / (3 n_k)
    assert three == {0: pytest.approx(1.0), 1: pytest.approx(2.0), 2: pytest.approx(2 / 3)}
    with pytest.raises(ValueError, match=r"got \[0, 2\]"):
        class_weights(np.array([0, 2]), "balanced")  # a class missing in between


@pytest.mark.slow
def test_balanced_weights_train_on_imbalanced_data(tmp_path: Path) -> None:
    train_images, train_labels = _squares(96, seed=2, positive_share=0.8)
    val_images, val_labels = _squares(32, seed=3)
    params = _params(
        tmp_path,
        epochs=1,
        class_weight="balanced",
        model=ModelParams(conv_filters=[4], dense_units=8),
        augmentation=AugmentationParams(),
    )
    _, history = train_classifier(train_images, train_labels, val_images, val_labels, params)
    assert history["epoch"] == [1]
    assert np.isfinite(history["loss"]).all()


def test_predict_probabilities_of_nothing_is_empty() -> None:
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten()])
    empty = predict_probabilities(model, np.zeros((0, 4, 4, 1), dtype=np.uint8), 8)
    assert empty.shape == (0,)
    assert empty.dtype == np.float32


def test_set_seeds_makes_keras_randomness_repeatable() -> None:
    set_seeds(11, deterministic_ops=False)
    first = np.asarray(keras.random.uniform((5,))), np.random.rand(3)
    set_seeds(11, deterministic_ops=False)
    second = np.asarray(keras.random.uniform((5,))), np.random.rand(3)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


@pytest.mark.slow
@pytest.mark.parametrize("change", ["data", "parameters"])
def test_a_checkpoint_of_other_data_or_parameters_is_set_aside_not_resumed(
    data: tuple[np.ndarray, ...],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    change: str,
) -> None:
    """Killed after epoch 2, then data_processing on another dataset (or other parameters):
    before, training resumed at epoch 3 with the first run's weights."""
    params = _params(tmp_path, epochs=3, model=ModelParams(conv_filters=[4], dense_units=8))
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_classifier(*data, params, extra_callbacks=[_Crash(after=2)])

    if change == "data":
        train_images, train_labels, val_images, val_labels = data
        other = train_images.copy()
        other[0, 0, 0, 0] ^= 1  # one pixel of one image
        data = (other, train_labels, val_images, val_labels)
    else:
        params = params.model_copy(update={"optimizer": OptimizerParams(learning_rate=1e-3)})
    with caplog.at_level(logging.WARNING):
        _, history = train_classifier(*data, params)
    assert history["epoch"] == [1, 2, 3]  # started afresh
    assert f"its {change} differ" in caplog.text
    (aside,) = tmp_path.glob("backup.stale-*")
    assert json.loads((aside / "training_metadata.json").read_text())["epoch"] == 2


def test_the_weights_digest_follows_every_weight() -> None:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    first = weights_digest(model)
    assert weights_digest(model) == first
    kernel, bias = model.get_weights()
    model.set_weights([kernel, bias + 1e-6])
    assert weights_digest(model) != first
