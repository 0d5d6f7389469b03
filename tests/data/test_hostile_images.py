"""Hostile images: sized from the header before decoding, decoded within a memory budget,
and every one that cannot become grey pixels an ``UnreadableImageError`` (a counted skip)."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image, ImageFile

from chest_xray.data import imaging
from chest_xray.data.decode_budget import DecodeBudget, decode_cost
from chest_xray.data.image_errors import UnsupportedImageError
from chest_xray.data.imaging import OutputSettings, UnreadableImageError, prepare, to_grey
from tests.data.dicom_files import dicom_bytes

SETTINGS = OutputSettings((24, 32))


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def ramp(width: int, height: int, top: int, dtype: type) -> np.ndarray:
    return np.tile(np.linspace(0, top, width).round().astype(dtype), (height, 1))


# --------------------------------------------------------------- sized before decoding


def test_an_image_over_the_pixel_limit_is_refused_from_its_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = encode(Image.new("I;16", (3000, 2000)), "PNG")  # a few KB, 12 MB decoded

    def no_decoding(self: ImageFile.ImageFile) -> None:
        raise AssertionError("decoded an image the header already refuses")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(UnsupportedImageError, match=r"3000x2000 = 6,000,000 pixels.*1,000,000"):
        prepare(data, "wide.png", SETTINGS, max_pixels=1_000_000)


def test_a_dicom_over_the_pixel_limit_is_refused_from_its_header() -> None:
    data = dicom_bytes(np.zeros((100, 120), dtype=np.uint8))
    with pytest.raises(UnsupportedImageError, match=r"120x100 = 12,000 pixels"):
        prepare(data, "big.dcm", SETTINGS, max_pixels=10_000)
    assert prepare(data, "big.dcm", SETTINGS, max_pixels=12_000)[0].size == (32, 24)


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_sixteen_bit_images_larger_than_a_strip_scale_exactly(mode: str) -> None:
    # 1500 x 1000 pixels: two strips of rows, so a seam between them would show.
    values = ramp(1500, 1000, 65535, np.uint16)
    values[::7] = 65535 - values[::7]
    order = ">u2" if mode == "I;16B" else "<u2"
    image = Image.frombytes(mode, (1500, 1000), values.astype(order).tobytes())
    grey = np.asarray(to_grey(image))
    expected = (values.astype(np.int64) * 255 // 65535).astype(np.uint8)
    np.testing.assert_array_equal(grey, expected)


def test_thirty_two_bit_and_float_images_scale_as_before() -> None:
    wide = ramp(1200, 900, 65535, np.int32)
    narrow = ramp(1200, 900, 255, np.int32)
    floats = ramp(1200, 900, 300, np.float32) - 20
    floats[0, 0] = np.nan
    np.testing.assert_array_equal(
        np.asarray(to_grey(Image.fromarray(wide, mode="I"))), wide * 255 // 65535
    )
    np.testing.assert_array_equal(np.asarray(to_grey(Image.fromarray(narrow, mode="I"))), narrow)
    expected = np.clip(np.rint(np.nan_to_num(floats.astype(np.float64))), 0, 255)
    np.testing.assert_array_equal(np.asarray(to_grey(Image.fromarray(floats, mode="F"))), expected)


def test_the_decode_cost_counts_the_mode_and_the_grey_copy() -> None:
    assert decode_cost("L", 100) == 200
    assert decode_cost("I;16", 100) == 300
    assert decode_cost("I", 100) == 500
    assert decode_cost("RGBA", 100) > decode_cost("RGB", 100)


def test_decodes_over_the_budget_wait_for_each_other() -> None:
    budget = DecodeBudget(10)
    inside: list[int] = []
    most = [0]
    lock = threading.Lock()

    def decode(cost: int) -> None:
        with budget.admit(cost):
            with lock:
                inside.append(cost)
                most[0] = max(most[0], sum(inside))
            time.sleep(0.05)
            with lock:
                inside.remove(cost)

    threads = [threading.Thread(target=decode, args=(6,)) for _ in range(4)]
    threads.append(threading.Thread(target=decode, args=(25,)))  # alone, over the whole budget
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] <= 25 and most[0] != 12  # never two 6s together, the 25 only alone
    assert budget.in_use == 0


def test_small_decodes_run_together_within_the_budget() -> None:
    budget = DecodeBudget(10)
    with budget.admit(4), budget.admit(4):
        assert budget.in_use == 8


# ------------------------------------------------------- every mode: grey, or a skip

# Modes Pillow writes to TIFF, PNG or both: each either becomes grey or is a counted skip.
TIFF_MODES = ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "I", "I;16",
              "I;16B", "F"]  # fmt: skip
PNG_MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"]


def mode_image(mode: str) -> Image.Image:
    base = Image.fromarray(ramp(64, 48, 255, np.uint8))
    if mode in ("I", "F", "I;16", "I;16B"):
        return base.convert("I").convert(mode) if mode != "F" else base.convert("F")
    if mode == "LAB":
        return Image.merge(
            "LAB", [base, Image.new("L", base.size, 128), Image.new("L", base.size, 128)]
        )
    if mode == "PA":
        return base.convert("P").convert("PA")
    return base.convert(mode)


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [("TIFF", mode) for mode in TIFF_MODES] + [("PNG", mode) for mode in PNG_MODES],
)
def test_every_mode_becomes_the_grey_of_its_picture(fmt: str, mode: str) -> None:
    data = encode(mode_image(mode), fmt)
    grey, original_mode, size = prepare(data, f"x.{fmt.lower()}", OutputSettings((48, 64)))
    assert grey.mode == "L" and grey.size == (64, 48) and size == (64, 48)
    pixels = np.asarray(grey, dtype=int)
    if mode not in ("1", "I;16", "I;16B", "I", "F"):  # (those rescale or threshold the ramp)
        assert pixels[:, :4].mean() < 40 and pixels[:, -4:].mean() > 200, original_mode


def test_a_mode_with_no_grey_conversion_is_a_skip_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = Image.Image.convert

    def refuse(
        self: Image.Image, mode: str | None = None, *args: object, **kw: object
    ) -> Image.Image:
        if self.mode == "RGB" and mode == "L":
            raise ValueError("conversion from RGB to L not supported")
        return original(self, mode, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Image.Image, "convert", refuse)
    with pytest.raises(UnsupportedImageError, match=r"odd.tiff: cannot make a RGB image grey"):
        prepare(encode(mode_image("RGB"), "TIFF"), "odd.tiff", SETTINGS)


@pytest.mark.parametrize("step", ["resize", "crop_border"])
def test_a_failing_crop_or_resize_is_a_skip(monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    def broken(*args: object, **kwargs: object) -> Image.Image:
        raise OSError("image file is truncated")

    monkeypatch.setattr(imaging, step, broken)
    with pytest.raises(UnreadableImageError, match="cannot make a L image grey: image file is"):
        prepare(encode(mode_image("L"), "PNG"), "a.png", SETTINGS)


def test_a_lab_tiff_keeps_its_lightness() -> None:
    data = encode(mode_image("LAB"), "TIFF")
    grey, original_mode, _ = prepare(data, "lab.tiff", OutputSettings((48, 64)))
    assert original_mode == "LAB"
    np.testing.assert_allclose(np.asarray(grey, dtype=int), ramp(64, 48, 255, np.uint8), atol=2)


def test_preprocessing_counts_an_image_that_cannot_become_grey_as_a_skip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chest_xray.data.preprocessing import preprocess_all

    modes = ["LAB", "CMYK", "YCbCr", "I;16", "I", "F", "P", "PA", "LA", "1"]
    files = {f"{mode}.tiff": encode(mode_image(mode), "TIFF") for mode in modes}
    real = imaging.to_grey

    def no_cmyk(image: Image.Image) -> Image.Image:
        if image.mode == "CMYK":
            raise ValueError("conversion from CMYK to L not supported")
        return real(image)

    monkeypatch.setattr(imaging, "to_grey", no_cmyk)
    loaders = {name: (lambda data=data: data) for name, data in files.items()}
    jobs = [(name, name) for name in files]
    outcomes = {o.key: o for o in preprocess_all(loaders, jobs, SETTINGS, workers=2)}
    assert {key for key, o in outcomes.items() if o.image is None} == {"CMYK.tiff"}
    assert outcomes["CMYK.tiff"].reason == (
        "cannot make a CMYK image grey: conversion from CMYK to L not supported"
    )
