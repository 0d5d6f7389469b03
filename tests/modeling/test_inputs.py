"""PNG decoding, the uint8 image array and the batch sequence fed to Keras."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from chest_xray.modeling.inputs import ImageBatches, decode_grey_png, load_image_array


def _png(array: np.ndarray, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


def _loaders(images: dict[str, np.ndarray]) -> dict[str, Callable[[], bytes]]:
    """Like a PartitionedDataset: id -> zero-arg callable returning the PNG bytes."""
    return {key: _constant(_png(img)) for key, img in images.items()}


def _constant(data: bytes) -> Callable[[], bytes]:
    return lambda: data


def _distinct(key_count: int, shape: tuple[int, int] = (12, 10)) -> dict[str, np.ndarray]:
    """Images whose every pixel is their index, plus a marker, so rows are identifiable."""
    images = {}
    for i in range(key_count):
        image = np.full(shape, i, dtype=np.uint8)
        image[0, 0] = 255 - i
        images[f"img_{i:03d}"] = image
    return images


def test_decode_grey_png_round_trips() -> None:
    image = np.arange(48, dtype=np.uint8).reshape(6, 8)
    decoded = decode_grey_png(_png(image))
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, image)


def test_decode_grey_png_rejects_rgb_naming_the_key() -> None:
    rgb = _png(np.zeros((4, 4), dtype=np.uint8), mode="RGB")
    with pytest.raises(ValueError, match=r"'scan_7'.*mode 'RGB'"):
        decode_grey_png(rgb, key="scan_7")


def test_load_image_array_fills_rows_in_key_order() -> None:
    images = _distinct(20)
    keys = sorted(images, reverse=True)  # an order unlike the mapping's
    array = load_image_array(_loaders(images), keys, threads=4)
    assert array.shape == (20, 12, 10, 1)
    assert array.dtype == np.uint8
    for row, key in enumerate(keys):
        np.testing.assert_array_equal(array[row, ..., 0], images[key])


def test_load_image_array_takes_keys_by_position_from_a_series() -> None:
    images = _distinct(5)
    keys = pd.Series(["img_003", "img_000", "img_004"], index=[7, 2, 0])  # filtered frame
    array = load_image_array(_loaders(images), keys, threads=2)
    assert array[:, 1, 1, 0].tolist() == [3, 0, 4]


def test_load_image_array_loads_a_subset_once_each() -> None:
    images = _distinct(6)
    calls: list[str] = []

    def loader(key: str) -> Callable[[], bytes]:
        def load() -> bytes:
            calls.append(key)
            return _png(images[key])

        return load

    keys = ["img_004", "img_001"]
    array = load_image_array({k: loader(k) for k in images}, keys, threads=1, progress=True)
    assert array[:, 1, 1, 0].tolist() == [4, 1]
    assert sorted(calls) == sorted(keys)


def test_load_image_array_names_a_missing_key() -> None:
    with pytest.raises(KeyError, match="img_999"):
        load_image_array(_loaders(_distinct(3)), ["img_000", "img_999"])


def test_load_image_array_names_an_image_of_another_size() -> None:
    images = _distinct(4)
    images["img_002"] = np.zeros((12, 11), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"'img_002' is 12x11, but 'img_000' is 12x10"):
        load_image_array(_loaders(images), sorted(images), threads=2)


def test_load_image_array_rejects_no_keys() -> None:
    with pytest.raises(ValueError, match="empty"):
        load_image_array(_loaders(_distinct(1)), [])


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
