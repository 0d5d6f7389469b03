"""The model room, 06_models: uint8 batches, augmentation, the VGG network, its training.

Inputs as uint8 batches, augmentation, the VGG-style network, the training loop with its
callbacks and checkpoints, test-time augmentation and the fold ensemble, multi-worker
placement, and their typed parameters. Keras 3 only (any backend); nothing here imports
Kedro."""

from typing import Any

# A ``keras.Model``, in the signatures of the pipelines' nodes. Named, not imported: Kedro
# imports every pipeline (and resolves its nodes' type hints) at each command's start, and
# importing Keras loads TensorFlow, seconds of work and start-up lines on stderr that
# `kedro registry list` or a data_processing run should not pay for.
KerasModel = Any
