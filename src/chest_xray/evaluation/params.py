"""Typed parameters of the evaluation stage (``evaluation`` in
``parameters_evaluation.yml``): the operating points, test-time augmentation, the
gallery of test images and the bootstrap intervals.

Beside the ``evaluation`` package they configure. ``chest_xray.params`` gathers every
stage's classes in one place, with the check that refuses binary-only settings in a
multiclass run (``check_task_options``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from chest_xray.data.params import StrictParams


class GalleryParams(StrictParams):
    n_images: PositiveInt = 16
    columns: PositiveInt = 4
    seed: int = 0


class BootstrapParams(StrictParams):
    """Percentile bootstrap intervals of the test metrics (``evaluation.bootstrap``)."""

    # Test sets resampled with replacement, each as large as the test set.
    resamples: int = Field(1000, ge=1000, le=100_000)
    seed: int = 0
    level: float = Field(0.95, ge=0.5, lt=1.0)  # 0.95: the 2.5th and 97.5th percentiles


class OodParams(StrictParams):
    """The out-of-distribution guard packaged with the model (``evaluation.ood``,
    ``inference/ood.py``): fitted on TRAIN, its threshold a quantile of VALIDATION."""

    enabled: bool = True  # false: packaged without a guard (images are not checked)
    quantile: float = Field(0.99, ge=0.5, lt=1.0)  # of validation scores: ~1% flagged
    # Images read per split (a seeded sample when more): bounds the packaging time; the
    # guard holds ~45 numbers per image while fitting, so memory is no limit.
    max_images: PositiveInt = 5000
    seed: int = 0


class EvaluationParams(StrictParams):
    """How predictions become metrics.

    ``threshold``, ``validation_threshold``, ``target_prevalence`` and
    ``model_threshold`` are binary concepts: a multiclass model predicts the class
    of highest probability, and ``check_task_options`` refuses them set otherwise.
    """

    classes: tuple[str, str] = ("NORMAL", "PNEUMONIA")
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    # A second operating point chosen on the validation split:
    # ``equal_error`` makes sensitivity and specificity as equal as validation allows
    # (no pull towards the class TRAIN has more of; over the screening's seeds the
    # steadier where Youden swung), ``youden`` maximises sensitivity +
    # specificity - 1, ``accuracy`` maximises validation accuracy, ``none`` reports
    # only the fixed threshold.
    validation_threshold: Literal["youden", "accuracy", "equal_error", "none"] = "equal_error"
    # Share of PNEUMONIA to adjust predicted probabilities to (Bayes' rule, from
    # the train split's share) before any threshold is applied or chosen; for a
    # deployment, or a test set, whose prevalence differs from TRAIN's. ``None``:
    # probabilities as the model gives them. Under ``training.class_weight: balanced``
    # the model learnt as if both classes were equal, so the shift starts from 1/2.
    target_prevalence: float | None = Field(None, gt=0.0, lt=1.0)
    # The threshold the packaged model (inference, CLI, served model) applies:
    # ``validation`` = the one ``validation_threshold`` chose (``threshold`` when it
    # chose none), ``fixed`` = ``threshold``.
    model_threshold: Literal["validation", "fixed"] = "validation"
    # Test-time augmentation: the mean probability over the original and its mirror
    # image (``flip``), and 4% shifts of both (``flip_shift``); validation, test and the
    # packaged model alike. ``none``: one pass (the write-up).
    tta: Literal["none", "flip", "flip_shift"] = "none"
    # What the packaged model returns: ``temperature`` = probabilities calibrated by the
    # temperature the report fitted on validation (its ``calibration`` section; same
    # labels, the threshold carried over to calibrated units), ``none`` = as the network
    # gives them. The report measures calibration either way.
    calibration: Literal["temperature", "none"] = "temperature"
    gallery: GalleryParams = GalleryParams()
    bootstrap: BootstrapParams = BootstrapParams()
    ood: OodParams = OodParams()
