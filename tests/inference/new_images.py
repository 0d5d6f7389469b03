"""A folder of "new" X-rays in every form inference must take, and the ones it must skip.

Made from grey arrays (the demo images, or noise), so a test knows which files
hold the same picture: ``png/a.png`` (8-bit) and ``dicom/a.dcm`` (MONOCHROME2,
no window) are the same pixels; ``dicom/deep/b`` is a DICOM without suffix.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tests.data.dicom_files import dicom_bytes, non_image_dicom_bytes


@dataclass(frozen=True)
class NewImages:
    root: Path
    readable: frozenset[str]  # paths relative to root
    skipped: dict[str, str]  # path -> expected category
    same_picture: tuple[str, str]  # a PNG and the DICOM made from it


def encoded(pixels: np.ndarray, format: str, **save: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=format, **save)
    return buffer.getvalue()


def write_new_images(root: Path, pictures: list[np.ndarray]) -> NewImages:
    """``pictures``: at least 3 grey uint8 arrays (H, W)."""
    first, second, third = pictures[:3]
    files: dict[str, bytes] = {
        "png/a.png": encoded(first, "PNG"),
        "dicom/a.dcm": dicom_bytes(first),
        "jpeg/b.jpg": encoded(second, "JPEG", quality=95),
        "png/c16.png": encoded((third.astype(np.uint16) * 257), "PNG"),
        # 12-bit MONOCHROME1 (bright = air) windowed on the lungs, no file suffix
        "dicom/deep/b": dicom_bytes(
            (4095 - second.astype(np.uint16) * 16),
            bits_stored=12,
            photometric="MONOCHROME1",
            window=(2048, 4096),
        ),
        "dicom/rle.dcm": dicom_bytes(third, compress_rle=True),
        # 12-bit MONOCHROME2 with a VOI window narrower than the data
        "dicom/windowed.dcm": dicom_bytes(
            first.astype(np.uint16) * 16, bits_stored=12, window=(2000, 3000)
        ),
        "bad/multi.dcm": dicom_bytes(first, frames=3),
        "bad/report.dcm": non_image_dicom_bytes(),
        "bad/truncated.jpg": encoded(second, "JPEG")[:400],
        "bad/notes.txt": b"not an image\n",
        "bad/empty.png": b"",
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    skipped = {
        "bad/multi.dcm": "unsupported",
        "bad/report.dcm": "unsupported",
        "bad/truncated.jpg": "unreadable",
        "bad/notes.txt": "unreadable",
        "bad/empty.png": "unreadable",
    }
    return NewImages(
        root, frozenset(set(files) - set(skipped)), skipped, ("png/a.png", "dicom/a.dcm")
    )
