"""ImageBatches: the batch sequence fed to Keras, shuffled reproducibly per epoch."""

from __future__ import annotations

import numpy as np
import pytest

from chest_xray.modeling.batches import ImageBatches


def _indexed(n: int) -> np.ndarray:
    """(n, 4, 4, 1) uint8 images whose pixels equal their row index."""
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 4, 4, 1)).copy()


def _epoch_rows(batches: ImageBatches) -> list[int]:
    rows: list[int] = []
    for i in range(len(batches)):
        images, _ = batches[i]
        rows.extend(images[:, 0, 0, 0].tolist())
    return rows


def test_batches_count_and_partial_last_batch() -> None:
    labels = np.arange(10) % 2
    batches = ImageBatches(_indexed(10), labels, 4, shuffle=False, seed=0)
    assert len(batches) == 3
    images, batch_labels = batches[2]
    assert images.shape == (2, 4, 4, 1)
    assert images.dtype == np.uint8
    assert batch_labels.dtype == np.float32
    assert images[:, 0, 0, 0].tolist() == [8, 9]
    assert batch_labels.tolist() == [0.0, 1.0]
    with pytest.raises(IndexError):
        batches[3]


def test_batches_without_labels_yield_images_only() -> None:
    batches = ImageBatches(_indexed(5), None, 2, shuffle=False, seed=0)
    batch = batches[0]
    assert isinstance(batch, np.ndarray)
    assert batch[:, 0, 0, 0].tolist() == [0, 1]


def test_batch_is_a_copy_of_only_its_rows() -> None:
    images = _indexed(8)
    batch, _ = ImageBatches(images, np.zeros(8), 3, shuffle=True, seed=1)[0]
    assert batch.shape[0] == 3
    assert not np.shares_memory(batch, images)


def test_labels_follow_their_images_when_shuffled() -> None:
    labels = np.arange(9) % 2
    batches = ImageBatches(_indexed(9), labels, 4, shuffle=True, seed=3)
    for i in range(len(batches)):
        images, batch_labels = batches[i]
        assert batch_labels.tolist() == (images[:, 0, 0, 0] % 2).astype(float).tolist()


def test_shuffle_covers_every_row_once_and_reshuffles_each_epoch() -> None:
    batches = ImageBatches(_indexed(50), np.zeros(50), 8, shuffle=True, seed=7)
    first = _epoch_rows(batches)
    batches.on_epoch_end()
    second = _epoch_rows(batches)
    assert sorted(first) == list(range(50))
    assert sorted(second) == list(range(50))
    assert first != list(range(50))
    assert first != second


def test_shuffle_is_deterministic_per_seed() -> None:
    def two_epochs(seed: int) -> list[int]:
        batches = ImageBatches(_indexed(30), np.zeros(30), 7, shuffle=True, seed=seed)
        rows = _epoch_rows(batches)
        batches.on_epoch_end()
        return rows + _epoch_rows(batches)

    assert two_epochs(5) == two_epochs(5)
    assert two_epochs(5) != two_epochs(6)


def test_unshuffled_order_survives_epochs() -> None:
    batches = ImageBatches(_indexed(6), np.zeros(6), 4, shuffle=False, seed=0)
    batches.on_epoch_end()
    assert _epoch_rows(batches) == list(range(6))


def test_mismatched_labels_are_rejected() -> None:
    with pytest.raises(ValueError, match="5 images but 4 labels"):
        ImageBatches(_indexed(5), np.zeros(4), 2, shuffle=False, seed=0)
