"""Grad-CAM overlays for predicted files, computed lazily, a batch at a time.

A folder of thousands of scans would need gigabytes to hold every overlay (or
every preprocessed image) until the catalog saves them. So each overlay is a
callable, as ``PartitionedDataset`` accepts for lazy saving: the first one of
a batch re-reads and preprocesses that batch's files, runs Grad-CAM on them
together and keeps only that batch's overlays until the next batch is asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from chest_xray.evaluation.gradcam import gradcam
from chest_xray.evaluation.gradcam_gallery import overlay_png
from chest_xray.evaluation.prior_shift import threshold_before_shift
from chest_xray.inference.classifier import Classifier


def gradcam_overlays(
    files: Mapping[str, Callable[[], bytes]],
    names: Sequence[str],
    classifier: Classifier,
    batch_size: int = 32,
) -> dict[str, Callable[[], bytes]]:
    """Name -> callable returning the PNG of that file's Grad-CAM overlay, in ``names`` order.

    The heatmap explains the class the model predicts for the image at its
    packaged threshold.
    """
    names = list(names)
    cache: dict[str, bytes] = {}
    settings = classifier.settings
    # Multiclass: the map is the most probable class's, whatever the threshold argument.
    threshold = (
        0.5
        if settings.threshold is None
        else threshold_before_shift(settings.threshold, settings.prior_shift)
    )

    def batch_of(index: int) -> Callable[[], bytes]:
        start = index - index % batch_size

        def make() -> bytes:
            name = names[index]
            if name not in cache:
                cache.clear()
                chunk = names[start : start + batch_size]
                pixels = np.stack([classifier.pixels(files[n](), n) for n in chunk])
                heatmaps = gradcam(
                    classifier.model, pixels, batch_size=batch_size, threshold=threshold
                )
                for n, image, heatmap in zip(chunk, pixels, heatmaps, strict=True):
                    cache[n] = overlay_png(image[..., 0], heatmap)
            return cache[name]

        return make

    return {name: batch_of(index) for index, name in enumerate(names)}
