"""A trained network and its inference settings: raw image bytes in, P(positive) and label out.

One object, used by the ``inference`` pipeline, ``chest-xray predict`` and the
served MLflow model alike, so all three preprocess an image with the very code
that made the training PNGs (``data.imaging.prepare``): same decoder, grey
conversion, resize and draft decoding, without the lossless PNG round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from chest_xray.data.imaging import DEFAULT_MAX_PIXELS, UnreadableImageError, prepare
from chest_xray.evaluation.calibration import apply_temperature, apply_temperature_multiclass
from chest_xray.evaluation.prior_shift import prior_shift
from chest_xray.inference.ood import OodGuard
from chest_xray.inference.settings import InferenceSettings, InferenceSettingsError
from chest_xray.modeling.tta import tta_probabilities

if TYPE_CHECKING:
    import keras

# What the OOD guard does with an image it flags: ``flag`` = no label (empty), ``label``
# = labelled anyway (still flagged), ``off`` = not scored (older packages have no guard).
OodPolicy = Literal["flag", "label", "off"]
OOD_COLUMNS = ["ood_score", "ood_flag", "ood_reason"]


def network_mismatch(model: Any, settings: InferenceSettings) -> str | None:
    """Why ``model``'s input or output shape does not fit ``settings``; None when it does
    (or when the model does not say its shapes)."""
    inputs, outputs = getattr(model, "input_shape", None), getattr(model, "output_shape", None)
    if isinstance(inputs, tuple) and len(inputs) == 4:
        expected = (*settings.image_size, 1)
        if tuple(inputs[1:]) != expected:
            return (
                f"the network takes images of {tuple(inputs[1:])}, but the package's "
                f"preprocessing makes {expected}"
            )
    if isinstance(outputs, tuple) and len(outputs) == 2 and outputs[1] is not None:
        units = 1 if settings.task == "binary" else len(settings.classes)
        if outputs[1] != units:
            return (
                f"the network has {outputs[1]} output(s), but the package is a "
                f"{settings.task} model of {len(settings.classes)} classes "
                f"{list(settings.classes)} (it needs {units})"
            )
    return None


class ImageTooLargeError(UnreadableImageError):
    """A file or request over ``max_image_bytes``: refused before it is decoded."""


@dataclass
class Classifier:
    """``model`` maps (N, H, W, 1) pixels 0..255 to P(``settings.classes[1]``), or for a
    multiclass package to the probability of each of ``settings.classes``."""

    model: keras.Model
    settings: InferenceSettings
    source: str  # where it was loaded from: a local package path or an MLflow URI
    ood_guard: OodGuard | None = None  # None: a package made before the guard existed
    ood_policy: OodPolicy = "flag"
    # Refused from the header above this (``--max-pixels``, CHEST_XRAY_MAX_IMAGE_PIXELS):
    # a property of the host running the model, not of the package.
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        """Refuse, when loaded, a network that does not fit its package's settings (it would
        otherwise load and fail at the first batch, far from the cause)."""
        problem = network_mismatch(self.model, self.settings)
        if problem:
            raise InferenceSettingsError(f"{self.source}: {problem}")

    def pixels(self, data: bytes, name: str) -> np.ndarray:
        """Encoded image (JPEG, PNG, DICOM, ...) -> (H, W, 1) uint8, as training saw it.

        Raises ``UnreadableImageError`` (or a subclass) naming ``name``.
        """
        if len(data) > self.settings.max_image_bytes:
            raise ImageTooLargeError(
                name,
                f"too large: {len(data):,} bytes, over the model's limit of "
                f"{self.settings.max_image_bytes:,} bytes",
            )
        image, _, _ = prepare(data, name, self.settings.output_settings, max_pixels=self.max_pixels)
        return np.asarray(image, dtype=np.uint8)[..., np.newaxis]

    @property
    def multiclass(self) -> bool:
        return self.settings.task == "multiclass"

    def probabilities(self, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """P(positive) for (N, H, W, 1) pixels, calibrated by the packaged temperature and
        shifted to the target prevalence if packaged so; a multiclass model's probability
        of each class, (N, K)."""
        if len(images) == 0:
            return np.zeros((0, len(self.settings.classes)) if self.multiclass else 0)
        expected = (*self.settings.image_size, 1)
        if tuple(images.shape[1:]) != expected:
            raise ValueError(f"images are {images.shape[1:]}, the model takes {expected}")
        prob = tta_probabilities(self.model, images, batch_size, self.settings.tta)
        if self.multiclass and (prob.ndim != 2 or prob.shape[1] != len(self.settings.classes)):
            raise ValueError(
                f"the network outputs {prob.shape[1:]} per image, but the package names "
                f"{len(self.settings.classes)} classes {list(self.settings.classes)}"
            )
        if self.settings.temperature != 1.0:
            scale = apply_temperature_multiclass if self.multiclass else apply_temperature
            prob = scale(prob, self.settings.temperature)
        if self.settings.prior_shift is not None:
            prob = prior_shift(prob, *self.settings.prior_shift)
        return prob

    def labels(self, prob: np.ndarray | Sequence[float]) -> list[str]:
        """The class at the packaged threshold: ``classes[1]`` when P >= threshold; for a
        multiclass model, the most probable class."""
        if self.multiclass:
            return [self.settings.classes[k] for k in np.asarray(prob).argmax(axis=1)]
        negative, positive = self.settings.classes
        threshold = self.settings.threshold
        assert threshold is not None  # a binary package always has one (InferenceSettings)
        return [positive if p >= threshold else negative for p in prob]

    def table(self, prob: np.ndarray, images: np.ndarray | None = None) -> dict[str, object]:
        """Columns of a predictions table: ``probability`` (of classes[1]; multiclass: of the
        predicted class), ``label``, and multiclass ``probability_<CLASS>`` per class.

        With the ``images`` (the pixels ``prob`` came from), also ``OOD_COLUMNS``; a
        flagged image's label is empty unless ``ood_policy`` is ``label``.
        """
        labels = self.labels(prob)
        ood = {} if images is None else self.ood_columns(images)
        if ood and self.ood_policy == "flag":
            labels = ["" if f else k for k, f in zip(labels, ood["ood_flag"], strict=True)]
        columns: dict[str, object] = {"label": labels, **ood}
        if not self.multiclass:
            return {"probability": np.asarray(prob, dtype=float), **columns}
        matrix = np.asarray(prob, dtype=float)
        columns = {"probability": matrix.max(axis=1, initial=0.0), **columns}
        for k, name in enumerate(self.settings.classes):
            columns[f"probability_{name}"] = matrix[:, k]
        return columns

    def ood_columns(self, images: np.ndarray) -> dict[str, Any]:
        """``ood_score`` (NaN when not scored), ``ood_flag`` and its ``ood_reason`` ("" when
        not flagged) for (N, H, W, 1) pixels."""
        n = len(images)
        if self.ood_guard is None or self.ood_policy == "off":
            return {
                "ood_score": np.full(n, np.nan),
                "ood_flag": np.zeros(n, bool),
                "ood_reason": [""] * n,
            }
        scores = self.ood_guard.scores(images)
        flags = self.ood_guard.flags(scores)
        reasons = [
            self.ood_guard.reason(s) if f else "" for s, f in zip(scores, flags, strict=True)
        ]
        return {"ood_score": scores, "ood_flag": flags, "ood_reason": reasons}

    def class_columns(self) -> list[str]:
        """The per-class probability columns a multiclass model adds (none for binary)."""
        return [f"probability_{name}" for name in self.settings.classes] if self.multiclass else []
