"""What a trained model must carry to be used on a new X-ray: preprocessing and threshold.

A Keras file alone says neither how its pixels were made (size, resize mode, JPEG
draft decoding) nor where to cut its probability. Inference that asked the user
to repeat them would sooner or later feed a 300 px model 224 px images, or apply
0.5 to a model whose validation-chosen threshold is 0.7. So the evaluation
pipeline packages the model with these settings (``packaging``), and every way
of using it (the ``inference`` pipeline, ``chest-xray predict``, the served
MLflow model) reads them back from the package; a package without them is refused.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

from chest_xray.data.imaging import OutputSettings
from chest_xray.evaluation.calibration import apply_temperature
from chest_xray.evaluation.prior_shift import prior_shift

if TYPE_CHECKING:
    from chest_xray.data.params import PreprocessingParams
    from chest_xray.evaluation.params import EvaluationParams

logger = logging.getLogger(__name__)

# Bump when a field's meaning changes; a package of another version is refused.
FORMAT_VERSION: Literal[1] = 1
# A request or file over this is refused before it is decoded (the largest original
# in the Kaggle set is ~3 MB; a 16-bit DICOM of a 4k x 4k detector is ~32 MB).
DEFAULT_MAX_IMAGE_BYTES = 64 * 1024 * 1024


class InferenceSettingsError(ValueError):
    """A model package whose inference settings are missing or unreadable."""


class InferenceSettings(BaseModel):
    """Everything between a raw image file and a labelled prediction, bar the network."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format_version: Literal[1] = FORMAT_VERSION
    # ``binary``: one probability, of classes[1], cut at ``threshold``; ``multiclass``:
    # a probability per class, the most probable one is the label (no threshold).
    task: Literal["binary", "multiclass"] = "binary"
    classes: tuple[str, ...]  # binary: label 0, label 1 (the positive class); else output order
    image_size: tuple[PositiveInt, PositiveInt]  # (height, width), as preprocessing
    resize_mode: Literal["stretch", "pad"]
    jpeg_draft: bool
    contrast: Literal["none", "equalize", "clahe"] = "none"  # preprocessing.contrast
    border_crop: float = Field(0.0, ge=0.0, lt=0.25)  # preprocessing.border_crop
    via_size: tuple[PositiveInt, PositiveInt] | None = None  # preprocessing.via_size
    # Binary: P(classes[1]) >= threshold -> classes[1]. Multiclass: None (argmax).
    threshold: float | None = Field(None, gt=0.0, lt=1.0)
    threshold_source: str  # e.g. "youden on validation", "evaluation.threshold", "argmax"
    # (from, to): probabilities shifted by Bayes' rule from the train split's share of
    # the positive class to a target one (evaluation.target_prevalence), else None.
    prior_shift: tuple[float, float] | None = None
    validation_auc: float | None = None  # decides the registry's champion alias
    tta: Literal["none", "flip", "flip_shift"] = "none"  # evaluation.tta
    # Probabilities are calibrated (the network's logits divided by this, fitted on
    # validation: evaluation.calibration) before the prior shift and the threshold, which
    # is in calibrated units; 1 = the network's own probabilities (packages made before).
    temperature: float = Field(1.0, gt=0.0)
    max_image_bytes: PositiveInt = DEFAULT_MAX_IMAGE_BYTES

    @model_validator(mode="after")
    def _task_fits(self) -> InferenceSettings:
        if self.task == "binary":
            if len(self.classes) != 2 or self.threshold is None:
                raise ValueError("a binary model needs two classes and a threshold")
        elif len(self.classes) < 3 or self.threshold is not None or self.prior_shift:
            raise ValueError(
                "a multiclass model needs three or more classes, and no threshold or prior "
                "shift (it predicts its most probable class)"
            )
        return self

    @property
    def decision(self) -> str:
        """How a label is chosen, for log lines: ``threshold 0.7100 (youden...)`` or argmax."""
        if self.threshold is None:
            return f"most probable of {len(self.classes)} classes"
        return f"threshold {self.threshold:.4f}, {self.threshold_source}"

    @property
    def output_settings(self) -> OutputSettings:
        """The preprocessing's own settings value, so inference runs the same code path."""
        return OutputSettings(
            self.image_size,
            self.resize_mode,
            self.jpeg_draft,
            contrast=self.contrast,
            border_crop=self.border_crop,
            via_size=self.via_size,
        )

    def to_config(self) -> dict[str, Any]:
        """Plain JSON values, for MLflow's ``model_config`` and the model's metadata."""
        return self.model_dump(mode="json")

    @classmethod
    def from_config(cls, config: dict[str, Any] | None, source: str) -> InferenceSettings:
        """Read back from a package; ``source`` (a path or URI) names it in the error."""
        if not config:
            raise InferenceSettingsError(
                f"{source} carries no inference settings (preprocessing and threshold): it "
                "was not packaged by this project's evaluation pipeline. Retrain it with "
                "`kedro run`, or package it with `kedro run --pipelines=evaluation`."
            )
        try:
            return cls.model_validate(config)
        except ValidationError as error:
            raise InferenceSettingsError(
                f"{source}: its inference settings cannot be read by this version of "
                f"chest-xray: {error}"
            ) from error


def settings_from_evaluation(
    report: dict[str, Any], preprocessing: PreprocessingParams, evaluation: EvaluationParams
) -> InferenceSettings:
    """The settings a model leaves the evaluation pipeline with.

    Preprocessing as ``data_processing`` made the training PNGs; the threshold
    per ``evaluation.model_threshold`` from the evaluation report (so the packaged
    model decides as the report's ``at_validation_threshold`` row says); the prior
    shift and validation AUC as the report recorded them.
    """
    multiclass = report.get("task") == "multiclass"
    threshold, source = (None, "argmax") if multiclass else _packaged_threshold(report, evaluation)
    shift = None if multiclass else report.get("prior_shift")
    shift_pair = None if shift is None else (shift["from"], shift["to"])
    temperature = _packaged_temperature(report, evaluation)
    if threshold is not None and temperature != 1.0:
        threshold = calibrated_threshold(threshold, temperature, shift_pair)
        source = f"{source}, in calibrated units"
    return InferenceSettings(
        task="multiclass" if multiclass else "binary",
        classes=tuple(report["classes"]) if multiclass else evaluation.classes,
        image_size=preprocessing.image_size,
        resize_mode=preprocessing.resize_mode,
        jpeg_draft=preprocessing.jpeg_draft,
        contrast=preprocessing.contrast,
        border_crop=preprocessing.border_crop,
        via_size=preprocessing.via_size,
        threshold=threshold,
        threshold_source=source,
        prior_shift=shift_pair,
        validation_auc=report.get("validation", {}).get("auc"),
        tta=evaluation.tta,
        temperature=temperature,
    )


def _packaged_temperature(report: dict[str, Any], evaluation: EvaluationParams) -> float:
    """The report's validation-fitted temperature, or 1 (``calibration: none``, or none fitted)."""
    if evaluation.calibration == "none":
        return 1.0
    return float((report.get("calibration") or {}).get("temperature", 1.0))


def calibrated_threshold(
    threshold: float, temperature: float, shift: tuple[float, float] | None
) -> float:
    """The threshold that makes the same decisions on calibrated probabilities.

    The report chose ``threshold`` on the network's probabilities (after the prior shift,
    if any); the package applies temperature, then shift, then threshold. Undo the
    shift, calibrate, redo the shift: every map is strictly increasing, so an image is
    called positive exactly when it was before.
    """
    raw = threshold if shift is None else float(prior_shift([threshold], shift[1], shift[0])[0])
    calibrated = float(apply_temperature(raw, temperature))
    return calibrated if shift is None else float(prior_shift([calibrated], *shift)[0])


def _packaged_threshold(report: dict[str, Any], evaluation: EvaluationParams) -> tuple[float, str]:
    """A binary model's threshold per ``evaluation.model_threshold``, and where it came from."""
    tuned = report["test"].get("at_validation_threshold")
    if evaluation.model_threshold != "validation":
        return evaluation.threshold, "evaluation.threshold"
    if tuned and tuned.get("threshold") is not None and 0.0 < tuned["threshold"] < 1.0:
        return float(tuned["threshold"]), f"{tuned['strategy']} on validation"
    logger.warning(
        "evaluation.model_threshold is 'validation', but no threshold was chosen on "
        "validation (validation_threshold: %s): the model is packaged with the fixed "
        "threshold %s",
        evaluation.validation_threshold,
        evaluation.threshold,
    )
    return evaluation.threshold, "evaluation.threshold (none chosen on validation)"
