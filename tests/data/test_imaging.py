"""Decoding every mode to correct 8-bit grey, resizing, and clear failures."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from chest_xray.data.imaging import (
    OutputSettings,
    UnreadableImageError,
    decode,
    preprocess,
    to_grey,
)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def gradient(width: int = 40, height: int = 30) -> np.ndarray:
    """A horizontal ramp 0..255 so a wrong conversion shows in the values."""
    row = np.linspace(0, 255, width).round().astype(np.uint8)
    return np.tile(row, (height, 1))


def png_pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        assert image.mode == "L"
        return np.asarray(image)


def test_sixteen_bit_png_is_scaled_not_clipped() -> None:
    values = gradient().astype(np.uint16) * 257  # 0..65535
    data = encode(Image.fromarray(values), "PNG")
    with Image.open(io.BytesIO(data)) as probe:
        assert probe.mode.startswith("I")
    grey = to_grey(decode(data, "x.png")[0])
    np.testing.assert_array_equal(np.asarray(grey), gradient())


def test_rgba_palette_and_cmyk_become_the_same_grey() -> None:
    grey = gradient()
    rgb = Image.fromarray(np.stack([grey] * 3, axis=-1))
    rgba = rgb.copy()
    rgba.putalpha(255)
    palette = Image.fromarray(grey).convert("P")
    cases = {
        "rgba.png": encode(rgba, "PNG"),
        "p.png": encode(palette, "PNG"),
        "rgb.png": encode(rgb, "PNG"),
    }
    for name, data in cases.items():
        np.testing.assert_array_equal(np.asarray(to_grey(decode(data, name)[0])), grey, name)
    cmyk = decode(encode(rgb.convert("CMYK"), "JPEG", quality=95), "c.jpeg")[0]
    assert cmyk.mode == "CMYK"
    assert np.abs(np.asarray(to_grey(cmyk), dtype=int) - grey).mean() < 4


def test_exif_rotation_is_applied() -> None:
    image = Image.fromarray(gradient(40, 20))  # wide
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = encode(image, "JPEG", exif=exif.tobytes(), quality=95)
    upright, mode, size = decode(data, "r.jpeg")
    assert (mode, size) == ("L", (40, 20))
    assert upright.size == (20, 40)  # tall once rotated
    pixels = np.asarray(upright, dtype=int)
    assert pixels[0].mean() < 60 and pixels[-1].mean() > 190  # the ramp now runs top-down


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"this is a text file, not an X-ray\n", "not an image"),
    ],
)
def test_unreadable_input_names_the_file(data: bytes, reason: str) -> None:
    with pytest.raises(UnreadableImageError, match=reason) as error:
        decode(data, "notes.txt")
    assert error.value.name == "notes.txt"


def test_truncated_jpeg_is_unreadable() -> None:
    data = encode(Image.fromarray(gradient(200, 200)), "JPEG")
    with pytest.raises(UnreadableImageError, match="cannot decode"):
        decode(data[: len(data) // 2], "cut.jpeg")


def test_decompression_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    data = encode(Image.new("L", (100, 100)), "PNG")
    with pytest.raises(UnreadableImageError, match="too large"):
        decode(data, "bomb.png")


def test_preprocess_stretches_to_size_as_grey_png() -> None:
    rgb = Image.fromarray(np.stack([gradient(80, 40)] * 3, axis=-1))
    result = preprocess(encode(rgb, "JPEG", quality=95), "a.jpeg", OutputSettings((30, 20)))
    pixels = png_pixels(result.png)
    assert pixels.shape == (30, 20)
    assert (result.original_mode, result.original_width, result.original_height) == ("RGB", 80, 40)
    assert pixels[:, 0].mean() < 30 and pixels[:, -1].mean() > 225


def test_pad_mode_keeps_aspect_with_black_bars() -> None:
    white = Image.new("L", (80, 40), 255)
    pixels = png_pixels(
        preprocess(encode(white, "PNG"), "w.png", OutputSettings((40, 40), resize_mode="pad")).png
    )
    assert pixels[:5].max() == 0 and pixels[-5:].max() == 0  # letterbox
    assert pixels[15:25].min() > 240


def test_draft_decoding_stays_close_to_a_full_decode() -> None:
    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(0, 256, (12, 16)), np.ones((100, 100))).astype(np.uint8)
    data = encode(Image.fromarray(smooth), "JPEG", quality=95)
    fast = png_pixels(preprocess(data, "a.jpeg", OutputSettings((60, 80), jpeg_draft=True)).png)
    full = png_pixels(preprocess(data, "a.jpeg", OutputSettings((60, 80), jpeg_draft=False)).png)
    rms = np.sqrt(((fast.astype(float) - full) ** 2).mean())
    assert rms < 2.0
