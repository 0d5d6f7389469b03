"""Grad-CAM drawn: a heat map over its X-ray, as an array, a PNG, or a gallery figure.

The heat maps come from ``gradcam``; this module only draws them, on arrays alone (no
Keras), so a saved map can be drawn again without the model. Nothing here knows of Kedro
or MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from io import BytesIO

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from PIL import Image

from chest_xray.data.figures import RIGHT_COLOUR, WRONG_COLOUR, message_figure, new_figure
from chest_xray.evaluation.plots import as_displayable

# ------------------------------------------------------------------------------ overlays


def _grey_uint8(image: np.ndarray) -> np.ndarray:
    """(H, W) uint8 on the scale the gallery shows it (``plots.as_displayable``)."""
    array, vmin, vmax = as_displayable(image)
    if array.ndim != 2:
        raise ValueError(f"image must be (H, W) or (H, W, 1); got shape {np.shape(image)}")
    if array.dtype == np.uint8:
        return array
    values = array.astype(np.float64)
    if vmin is None or vmax is None:  # an unknown range: stretch it, as imshow would
        vmin = float(values.min()) if values.size else 0.0
        vmax = float(values.max()) if values.size else 1.0
    span = vmax - vmin if vmax > vmin else 1.0
    return np.rint(np.clip((values - vmin) / span, 0.0, 1.0) * 255.0).astype(np.uint8)


def overlay(
    image: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.4, colormap: str = "jet"
) -> np.ndarray:
    """The heat map in ``colormap`` colours blended over the grey image: (H, W, 3) uint8.

    A uniform blend (``alpha`` heat, ``1 - alpha`` image) rather than a heat-weighted one
    keeps the colour scale readable everywhere: cold regions show as blue, not as bare
    image that could be mistaken for "not analysed". ``alpha=0`` gives the image alone.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    grey = _grey_uint8(image)
    heat = np.asarray(heatmap, dtype=np.float64)
    if heat.shape != grey.shape:
        raise ValueError(f"heatmap shape {heat.shape} does not match image shape {grey.shape}")
    colours = colormaps[colormap](np.clip(heat, 0.0, 1.0))[..., :3] * 255.0
    rgb = np.repeat(grey[..., None].astype(np.float64), 3, axis=-1)
    return np.rint((1.0 - alpha) * rgb + alpha * colours).astype(np.uint8)


def overlay_png(
    image: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.4, colormap: str = "jet"
) -> bytes:
    """``overlay`` encoded as an RGB PNG, for saving one file per image."""
    buffer = BytesIO()
    Image.fromarray(overlay(image, heatmap, alpha=alpha, colormap=colormap), "RGB").save(
        buffer, format="PNG"
    )
    return buffer.getvalue()


# ------------------------------------------------------------------------------- gallery


def gradcam_gallery_figure(
    images: Sequence[np.ndarray],
    heatmaps: Sequence[np.ndarray],
    titles: Sequence[str],
    *,
    columns: int = 4,
    wrong: Sequence[bool] | None = None,
) -> Figure:
    """Grid of examples, each the grey image beside its Grad-CAM overlay, under one title.

    ``columns`` counts examples (two panels each) per row. Titles are e.g.
    ``plots.gallery_title``; ``wrong`` marks misclassified examples, whose titles turn
    red as in ``prediction_gallery_figure``. The figure has exactly two axes per example.
    """
    n = len(images)
    if not len(heatmaps) == len(titles) == n:
        raise ValueError("images, heatmaps and titles must have the same length")
    if wrong is not None and len(wrong) != n:
        raise ValueError("wrong must have one entry per image")
    if columns < 1:
        raise ValueError("columns must be at least 1")
    if n == 0:
        return message_figure("Grad-CAM", "no images")
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    fig = new_figure(6.4 * cols, 3.6 * rows)
    cells = fig.subfigures(rows, cols, squeeze=False).ravel()
    for index, (cell, image, heatmap, title) in enumerate(
        zip(cells, images, heatmaps, titles, strict=False)
    ):
        left, right = cell.subplots(1, 2)
        array, vmin, vmax = as_displayable(image)
        left.imshow(array, cmap="gray", vmin=vmin, vmax=vmax)
        right.imshow(overlay(image, heatmap))
        right.set_title("Grad-CAM", fontsize=8)
        left.set_axis_off()
        right.set_axis_off()
        colour = WRONG_COLOUR if wrong is not None and wrong[index] else RIGHT_COLOUR
        cell.suptitle(title, color=colour, fontsize=9)
    return fig
