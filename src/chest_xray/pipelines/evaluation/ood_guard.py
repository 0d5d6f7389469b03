"""The evaluation pipeline's out-of-distribution guard: fitted by ``package_model`` on the
processed images the model learnt from, packaged with it (``inference/ood.py``, docs/ood.md).

Fitted inside ``package_model`` rather than by a node of its own: the guard takes seconds
to fit and travels only inside the package, so it needs no catalog entry, and
``kedro run --from-nodes=predict`` (or ``--nodes=package_model``) still packages one."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pandas as pd

from chest_xray.data.partitions import PartitionLoaders
from chest_xray.evaluation.params import EvaluationParams
from chest_xray.inference.ood import OodGuard, fit_guard
from chest_xray.modeling.inputs import decode_grey_png, split_rows

logger = logging.getLogger(__name__)


def fit_ood_guard(
    processed_images: PartitionLoaders, split_manifest: pd.DataFrame, params: EvaluationParams
) -> OodGuard | None:
    """Fit on the TRAIN images, threshold on the VALIDATION ones; None when
    ``evaluation.ood.enabled`` is false (the package then checks no image).

    Images are decoded one at a time (a seeded sample of ``evaluation.ood.max_images``
    per split when there are more), so memory holds one image and ~45 numbers per image.
    """
    settings = params.ood
    if not settings.enabled:
        logger.info("evaluation.ood.enabled is false: the model is packaged without an OOD guard")
        return None
    train, validation = (
        _sample(split_rows(split_manifest, split)["image_id"], settings.max_images, settings.seed)
        for split in ("train", "validation")
    )
    missing = [key for key in (*train, *validation) if key not in processed_images]
    if missing:
        raise KeyError(
            f"{len(missing)} image(s) of split_manifest are not in processed_images "
            f"(first: {missing[0]!r}); run the data_processing pipeline again"
        )
    guard = fit_guard(
        _decoded(processed_images, train), _decoded(processed_images, validation), settings.quantile
    )
    logger.info("Fitted the %s", guard.describe())
    return guard


def _sample(keys: pd.Series, limit: int, seed: int) -> list[str]:
    """All of ``keys``, or a seeded sample of ``limit`` of them, in key order."""
    keys_list = keys.tolist()
    if len(keys_list) <= limit:
        return keys_list
    chosen = np.random.default_rng(seed).choice(len(keys_list), limit, replace=False)
    return [keys_list[i] for i in sorted(chosen)]


def _decoded(loaders: PartitionLoaders, keys: list[str]) -> Iterator[np.ndarray]:
    for key in keys:
        yield decode_grey_png(loaders[key](), key=key)
