"""Small generated images for the out-of-distribution guard: chest-like films and the rest."""

from __future__ import annotations

import numpy as np

SIZE = (60, 52)


def chest_like(rng: np.random.Generator, size: tuple[int, int] = SIZE) -> np.ndarray:
    """A frontal film, roughly: grey body, two dark lungs either side of a bright spine."""
    height, width = size
    v, u = np.mgrid[0:height, 0:width]
    v, u = v / (height - 1), u / (width - 1)
    body = 150 + rng.normal(0, 8)
    image = np.full(size, body) - 60 * (np.abs(u - 0.5) > 0.45)
    for side in (0.28, 0.72):
        cu, cv = side + rng.normal(0, 0.02), 0.45 + rng.normal(0, 0.03)
        lung = ((u - cu) / 0.17) ** 2 + ((v - cv) / 0.3) ** 2 < 1
        image[lung] -= 80 + rng.normal(0, 8)
    image[:, int(0.47 * width) : int(0.53 * width)] += 40
    image += rng.normal(0, 6, size)
    return np.clip(image, 0, 255).astype(np.uint8)


def not_chest(rng: np.random.Generator) -> dict[str, np.ndarray]:
    film = chest_like(rng)
    return {
        "blank": np.zeros(SIZE, np.uint8),
        "white": np.full(SIZE, 255, np.uint8),
        "noise": rng.integers(0, 256, SIZE).astype(np.uint8),
        "gradient": np.tile(np.linspace(0, 255, SIZE[1]), (SIZE[0], 1)).astype(np.uint8),
        "inverted": 255 - film,
        "rotated": np.ascontiguousarray(np.rot90(chest_like(rng, SIZE[::-1]))),
    }
