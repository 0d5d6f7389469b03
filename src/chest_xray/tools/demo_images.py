"""The synthetic X-rays drawn: a chest-like silhouette whose PNEUMONIA lungs carry opacities.

Images are drawn, not copied: each patient has an anatomy (body width, lung fields, heart,
ribs) that all their images share, which is what a leaky split could exploit; PNEUMONIA
lungs carry hazy patchy opacities, so a small CNN learns the classes in a few epochs at
64-96 px, while global brightness is jittered so the mean pixel alone is a poor
classifier. Width and height are drawn the same way for both classes. ``save`` stores the
8-bit grey result in the file's planned mode (L, RGB, RGBA, P, CMYK, 16-bit).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Anatomy:
    """Per-patient shape, so a patient's images look alike (what a leaky split exploits)."""

    body_width: float
    lung_x: float
    lung_y: float
    lung_rx: float
    lung_ry: float
    heart_x: float
    rib_freq: float


def anatomy(rng: np.random.Generator) -> Anatomy:
    """One patient's shape, drawn within the ranges that keep a plausible chest."""
    return Anatomy(
        body_width=rng.uniform(0.84, 0.95),
        lung_x=rng.uniform(0.38, 0.44),
        lung_y=rng.uniform(-0.1, 0.0),
        lung_rx=rng.uniform(0.27, 0.32),
        lung_ry=rng.uniform(0.55, 0.66),
        heart_x=rng.uniform(0.08, 0.16),
        rib_freq=rng.uniform(4.5, 6.0),
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30.0, 30.0)))


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a coarse random grid upsampled bicubically."""
    grid = Image.fromarray(rng.random((cells, cells), dtype=np.float32))
    big = np.asarray(grid.resize((width, height), Image.Resampling.BICUBIC))
    return np.clip(big, 0.0, 1.0)


def _lung_mask(u: np.ndarray, v: np.ndarray, a: Anatomy) -> np.ndarray:
    """Two soft egg shapes, narrow at the apex; 1 inside the lung fields, 0 outside."""
    depth = np.clip((v - a.lung_y + a.lung_ry) / (2 * a.lung_ry), 0.0, 1.0)
    rx = a.lung_rx * (0.65 + 0.35 * np.sqrt(depth))
    masks = [
        _sigmoid(6.0 * (1.0 - ((u - s * a.lung_x) / rx) ** 2 - ((v - a.lung_y) / a.lung_ry) ** 2))
        for s in (-1.0, 1.0)
    ]
    return np.maximum(*masks)


def _opacities(
    rng: np.random.Generator, u: np.ndarray, v: np.ndarray, a: Anatomy, patchy: np.ndarray
) -> np.ndarray:
    """Bright hazy blobs inside the lungs: the PNEUMONIA signal."""
    total = np.zeros_like(u)
    for _ in range(int(rng.integers(2, 6))):
        side = rng.choice((-1.0, 1.0))
        cx = side * a.lung_x + a.lung_rx * 0.6 * rng.uniform(-1, 1)
        cy = a.lung_y + a.lung_ry * 0.7 * rng.uniform(-1, 1)
        sx, sy = rng.uniform(0.12, 0.22), rng.uniform(0.14, 0.3)
        blob = np.exp(-(((u - cx) / sx) ** 2 + ((v - cy) / sy) ** 2) / 2.0)
        total += rng.uniform(0.3, 0.5) * blob
    return np.minimum(total, 0.55) * (0.5 + 0.5 * patchy)


def draw(
    rng: np.random.Generator, a: Anatomy, pneumonia: bool, width: int, height: int
) -> np.ndarray:
    """An 8-bit grey chest-like image of ``width`` x ``height``."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    scale = rng.uniform(0.92, 1.05)
    u = ((xx + 0.5) / width * 2 - 1 - rng.uniform(-0.06, 0.06)) / scale
    v = ((yy + 0.5) / height * 2 - 1 - rng.uniform(-0.06, 0.06)) / scale
    body = _sigmoid(8.0 * (1.0 - np.abs(u / a.body_width) ** 2.5 - np.abs((v - 0.1) / 1.2) ** 2.5))
    lungs = _lung_mask(u, v, a)
    ribs = 0.5 + 0.5 * np.sin(2 * np.pi * (v * a.rib_freq + 0.6 * u**2))
    img = 0.08 + 0.5 * body - 0.33 * lungs
    img += 0.07 * ribs * lungs + 0.12 * np.exp(-((u / 0.09) ** 2)) * body
    img += 0.18 * np.exp(-(((u - a.heart_x) / 0.2) ** 2 + ((v - 0.3) / 0.18) ** 2) / 2.0)
    img += 0.05 * (_smooth_noise(rng, width, height, 8) - 0.5) * lungs  # vessels, both classes
    if pneumonia:
        img += _opacities(rng, u, v, a, _smooth_noise(rng, width, height, 6)) * lungs
    img = img * rng.uniform(0.75, 1.25) + rng.uniform(-0.16, 0.16)
    img += rng.normal(0.0, 0.025, img.shape)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def image_size(rng: np.random.Generator, min_size: int, max_size: int) -> tuple[int, int]:
    """Width and height drawn the same way for both classes: no resolution shortcut."""
    width = int(rng.integers(min_size, max_size + 1))
    height = int(np.clip(round(width * rng.uniform(0.8, 1.25)), min_size, max_size))
    return width, height


def save(grey: np.ndarray, mode: str, path: Path) -> None:
    """Store 8-bit grey in ``mode``; PNG for the modes JPEG cannot hold."""
    image = Image.fromarray(grey)
    if mode == "I;16":
        Image.fromarray(grey.astype(np.uint16) * 257).save(path, "PNG")
    elif mode in ("RGBA", "P"):
        image.convert(mode).save(path, "PNG")
    elif mode == "CMYK":
        image.convert("RGB").convert("CMYK").save(path, "JPEG", quality=92)
    else:
        image.convert(mode).save(path, "JPEG", quality=92)
