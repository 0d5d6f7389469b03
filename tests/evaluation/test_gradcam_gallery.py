"""Grad-CAM drawn: overlays as arrays and PNGs, and the gallery figure."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from matplotlib.colors import to_hex
from PIL import Image

from chest_xray.data.figures import WRONG_COLOUR
from chest_xray.evaluation.gradcam_gallery import gradcam_gallery_figure, overlay, overlay_png


def _noise(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, size, size, 1), dtype=np.uint8)


# --------------------------------------------------------------------------- overlays


def test_overlay_is_an_rgb_image_and_alpha_zero_is_the_grey_image() -> None:
    image = _noise(np.random.default_rng(9), 1, 20)[0]
    heatmap = np.linspace(0.0, 1.0, 400, dtype=np.float32).reshape(20, 20)

    blended = overlay(image, heatmap)
    assert blended.shape == (20, 20, 3) and blended.dtype == np.uint8
    assert not np.array_equal(blended, np.repeat(image, 3, axis=-1))

    np.testing.assert_array_equal(overlay(image, heatmap, alpha=0.0), np.repeat(image, 3, -1))
    np.testing.assert_array_equal(overlay(image[..., 0], heatmap, alpha=0.0)[..., 1], image[..., 0])


def test_overlay_colours_the_hot_end_with_the_colormap() -> None:
    image = np.zeros((2, 2), np.uint8)
    heatmap = np.array([[0.0, 0.0], [0.0, 1.0]])

    blended = overlay(image, heatmap, alpha=1.0, colormap="jet")

    assert to_hex(blended[1, 1] / 255.0) == "#800000"  # jet's dark red at 1.0
    assert to_hex(blended[0, 0] / 255.0) == "#000080"  # and dark blue at 0.0


def test_overlay_rejects_a_heatmap_of_another_size_and_bad_alpha() -> None:
    image = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match="does not match"):
        overlay(image, np.zeros((4, 5)))
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, np.zeros((4, 4)), alpha=1.5)


def test_overlay_png_decodes_to_the_overlay() -> None:
    image = _noise(np.random.default_rng(10), 1, 12)[0]
    heatmap = np.random.default_rng(11).random((12, 12))

    with Image.open(BytesIO(overlay_png(image, heatmap, alpha=0.5))) as png:
        assert png.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(png), overlay(image, heatmap, alpha=0.5))


# ---------------------------------------------------------------------------- gallery


def test_gallery_has_an_image_and_an_overlay_per_example() -> None:
    images = list(_noise(np.random.default_rng(12), 5, 16))
    heatmaps = list(np.random.default_rng(13).random((5, 16, 16)))
    titles = [f"example {k}" for k in range(5)]

    fig = gradcam_gallery_figure(
        images, heatmaps, titles, columns=2, wrong=[False, True, False, False, False]
    )

    assert len(fig.axes) == 10
    assert all(len(ax.get_images()) == 1 for ax in fig.axes)
    suptitles = [text for cell in fig.subfigs for text in cell.texts]  # one per example
    assert [text.get_text() for text in suptitles] == titles
    assert [to_hex(text.get_color()) for text in suptitles].count(WRONG_COLOUR) == 1
    assert to_hex(suptitles[1].get_color()) == WRONG_COLOUR
    buffer = BytesIO()
    fig.savefig(buffer, format="png", dpi=30)
    assert buffer.getvalue().startswith(b"\x89PNG")


def test_gallery_of_nothing_says_so_and_mismatches_are_errors() -> None:
    fig = gradcam_gallery_figure([], [], [])
    assert [text.get_text() for ax in fig.axes for text in ax.texts] == ["no images"]
    with pytest.raises(ValueError, match="same length"):
        gradcam_gallery_figure([np.zeros((4, 4))], [], ["a"])
