"""Nodes of the inference pipeline: a folder of new images -> predictions, skips, Grad-CAM."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pandas as pd

from chest_xray.datasets.file_listing_dataset import FileListing
from chest_xray.inference.batch import most_confident, predict_files
from chest_xray.inference.classifier import Classifier
from chest_xray.inference.explain import gradcam_overlays
from chest_xray.inference.params import InferenceParams

logger = logging.getLogger(__name__)


def predict_new_images(
    inference_images: FileListing, servable_model: Classifier, params: InferenceParams
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Callable[[], bytes]]]:
    """Every readable file predicted, every other one listed with its reason.

    Preprocessing and threshold are the model's own; a folder where no file is a
    usable image is an error naming the folder (an empty one already stops the
    catalog). Grad-CAM overlays are made when the catalog saves them.
    """
    servable_model.ood_policy = params.ood  # what a flagged image gets (inference.ood)
    sizes = dict(
        zip(inference_images.table["partition"], inference_images.table["size"], strict=True)
    )
    result = predict_files(
        inference_images,
        servable_model,
        batch_size=params.batch_size,
        workers=params.workers,
        sizes=sizes,
        progress=params.progress,
    )
    if result.predictions.empty:
        first = result.skipped.head(3)
        reasons = "; ".join(
            f"{file}: {reason}" for file, reason in zip(first["file"], first["reason"], strict=True)
        )
        raise ValueError(
            f"None of the {result.n_files} files under {inference_images.root or 'inference_root'} "
            f"is an image the model can read ({reasons})"
        )
    labelled = result.predictions[result.predictions["label"] != ""]
    counts = labelled["label"].value_counts().to_dict()
    logger.info(
        "Predicted %d of %d files with %s (%s): %s; %d flagged out of distribution "
        "(inference.ood: %s); %d skipped (inference_skipped)",
        len(result.predictions),
        result.n_files,
        servable_model.source,
        servable_model.settings.decision,
        ", ".join(f"{n} {label}" for label, n in sorted(counts.items())),
        int(result.predictions["ood_flag"].astype(bool).sum()),
        params.ood if servable_model.ood_guard is not None else "no guard in this model",
        len(result.skipped),
    )
    if params.gradcam == "none":
        chosen: list[str] = []
    elif params.gradcam == "all":
        chosen = result.predictions["file"].tolist()
    else:
        chosen = most_confident(result.predictions, params.gradcam)
    overlays = gradcam_overlays(inference_images, chosen, servable_model, params.batch_size)
    return result.predictions, result.skipped, overlays
