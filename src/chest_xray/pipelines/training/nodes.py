"""Nodes of the training pipeline: fit the network, draw its learning curves."""

from __future__ import annotations

import logging

import pandas as pd
from matplotlib.figure import Figure

from chest_xray.data.partitions import PartitionLoaders
from chest_xray.evaluation.plots import training_curves_figure
from chest_xray.modeling import KerasModel
from chest_xray.modeling.inputs import label_indices, load_image_array, split_rows
from chest_xray.modeling.params import TrainingParams

logger = logging.getLogger(__name__)


def train_model(
    processed_images: PartitionLoaders, split_manifest: pd.DataFrame, params: TrainingParams
) -> tuple[KerasModel, dict[str, list[float]]]:
    """Fit the network on the train split, monitoring the validation split; the model
    comes back in float32 whatever precision it trained in (``in_float32``), so the saved
    file predicts at full speed on any machine, as the evaluation measured it."""
    from chest_xray.modeling.model import in_float32  # Keras: only when training
    from chest_xray.modeling.trainer import train_classifier

    train = split_rows(split_manifest, "train")
    validation = split_rows(split_manifest, "validation")
    x_train = load_image_array(processed_images, train["image_id"], params.loader_threads)
    x_val = load_image_array(processed_images, validation["image_id"], params.loader_threads)
    logger.info(
        "Training on %d images, validating on %d, input %s (uint8, %.0f MB in memory)",
        len(x_train),
        len(x_val),
        x_train.shape[1:],
        (x_train.nbytes + x_val.nbytes) / 1e6,
    )
    model, history = train_classifier(
        x_train,
        label_indices(train, params.class_names),
        x_val,
        label_indices(validation, params.class_names),
        params,
        log=logger,
    )
    return in_float32(model), history


def plot_training_curves(training_history: dict[str, list[float]]) -> Figure:
    """Loss, accuracy and AUC per epoch, train against validation."""
    return training_curves_figure(training_history)
