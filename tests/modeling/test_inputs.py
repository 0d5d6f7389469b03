"""PNG decoding, the uint8 image array, and the manifest rows of a split."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from chest_xray.modeling.inputs import (
    decode_grey_png,
    label_indices,
    load_image_array,
    split_rows,
)


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


def test_split_rows_are_sorted_by_image_id() -> None:
    manifest = pd.DataFrame(
        {"image_id": ["c", "a", "b", "d"], "split": ["test", "test", "train", "test"]}
    )
    assert split_rows(manifest, "test")["image_id"].tolist() == ["a", "c", "d"]
    assert split_rows(manifest, "validation").empty


def test_label_indices_follow_the_class_order_and_refuse_strangers() -> None:
    rows = pd.DataFrame({"label": ["PNEUMONIA", "NORMAL", "PNEUMONIA"]})
    assert label_indices(rows, ("NORMAL", "PNEUMONIA")).tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match="COVID"):
        label_indices(pd.DataFrame({"label": ["COVID"]}), ("NORMAL", "PNEUMONIA"))


def test_a_damaged_png_is_named_with_the_fix() -> None:
    damaged = _png(np.zeros((6, 8), dtype=np.uint8))[:40]
    with pytest.raises(ValueError, match=r"'train/x'.*train/x\.png.*data_processing"):
        decode_grey_png(damaged, key="train/x")
    with pytest.raises(ValueError, match="'test/z'"):
        load_image_array(
            _loaders({"test/y": np.zeros((4, 4), dtype=np.uint8)}) | {"test/z": lambda: b"junk"},
            ["test/y", "test/z"],
        )
