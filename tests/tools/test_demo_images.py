"""The demo X-rays: 8-bit grey of the drawn size, reproducible, stored in every planned mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chest_xray.tools.demo_images import anatomy, draw, image_size, save


def _image(seed: int, pneumonia: bool, width: int = 40, height: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return draw(rng, anatomy(rng), pneumonia, width, height)


def test_an_image_is_8_bit_grey_of_the_asked_size_and_reproducible() -> None:
    image = _image(1, pneumonia=True)

    assert image.shape == (48, 40) and image.dtype == np.uint8
    assert image.std() > 10  # a picture, not a flat field
    np.testing.assert_array_equal(image, _image(1, pneumonia=True))
    assert not np.array_equal(image, _image(2, pneumonia=True))


def test_sizes_stay_within_the_bounds() -> None:
    rng = np.random.default_rng(0)
    sizes = [image_size(rng, 72, 160) for _ in range(200)]

    assert all(72 <= side <= 160 for size in sizes for side in size)
    assert len(set(sizes)) > 50


@pytest.mark.parametrize(
    ("mode", "stored", "format_"),
    [
        ("L", "L", "JPEG"),
        ("RGB", "RGB", "JPEG"),
        ("CMYK", "CMYK", "JPEG"),
        ("RGBA", "RGBA", "PNG"),
        ("P", "P", "PNG"),
        ("I;16", None, "PNG"),  # Pillow may open a 16-bit PNG as I;16 or I
    ],
)
def test_save_stores_the_planned_mode(
    tmp_path: Path, mode: str, stored: str | None, format_: str
) -> None:
    grey = _image(3, pneumonia=False)
    path = tmp_path / "x"

    save(grey, mode, path)

    with Image.open(path) as image:
        assert image.format == format_
        assert image.mode in ({stored} if stored else {"I;16", "I"})
        assert image.size == (40, 48)
