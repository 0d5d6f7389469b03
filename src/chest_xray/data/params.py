"""Typed parameters of the data stages: the metadata join, preprocessing, the split and
the cross-validation folds (``metadata``, ``preprocessing``, ``split`` and
``cross_validation`` in ``conf/*/parameters_*.yml``).

Beside the ``data`` package they configure, and the lowest of the per-stage parameter
modules: ``StrictParams``, the base every stage's parameters share, lives here so that
the other stages import it upwards only (data -> modeling -> evaluation -> inference).
``chest_xray.params`` gathers every stage's classes in one place.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator

from chest_xray.data.imaging import Contrast, OutputSettings, ResizeMode


class StrictParams(BaseModel):
    """Base: unknown keys are errors, so a typo in YAML never passes silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class MetadataParams(StrictParams):
    """How the Kaggle metadata CSV is read."""

    # Raw ``Label`` spelling -> class name. The dataset spells it ``Pnemonia``.
    label_map: dict[str, Literal["NORMAL", "PNEUMONIA"]] = {
        "Normal": "NORMAL",
        "Pnemonia": "PNEUMONIA",
        "Pneumonia": "PNEUMONIA",
    }


class PreprocessingParams(StrictParams):
    """Grayscale + resize of every joined image to a PNG."""

    # (height, width); one number means a square, so that `--params` can set it (Kedro
    # splits a --params value on commas: a list cannot be written there).
    image_size: tuple[PositiveInt, PositiveInt] = (300, 300)
    # ``stretch`` ignores the aspect ratio, as the write-up did; ``pad`` letterboxes
    # with black so anatomy keeps its proportions.
    resize_mode: ResizeMode = "stretch"
    # Let libjpeg decode at a reduced scale (>= 2x the target) before the
    # antialiased resize: much faster on large JPEGs, a fraction of a grey level
    # from a full decode (docs/benchmarks.md#design-figures).
    jpeg_draft: bool = True
    png_compress_level: int = Field(1, ge=0, le=9)
    # Histogram equalisation of each image after the resize: ``none`` (the write-up),
    # ``equalize`` (global) or ``clahe`` (adaptive, clip limit 0.01). A model trained
    # on equalised images is packaged with the setting, so inference equalises too.
    contrast: Contrast = "none"
    # Share of the height and width cut from each side before the resize (0 = off):
    # takes laterality letters, hospital text and film edges out of the image.
    border_crop: float = Field(0.0, ge=0.0, lt=0.25)
    # (height, width), or None: every image not already this size is first made as the
    # shared copy's 224 px TRAIN images were from their originals (imaging.via_copy), so
    # an original reaches the network by the path the training images took.
    via_size: tuple[PositiveInt, PositiveInt] | None = None
    workers: int = Field(0, ge=0)  # threads: 0 = one per CPU core; 1 = in the calling thread
    # Reuse the PNG of an image whose source bytes and settings are unchanged
    # since the last run (per preprocessing_log) instead of decoding it again.
    incremental: bool = True
    # Read and hash every PNG to be reused against the log's digest, even one whose size
    # and modification time are unchanged (a PNG damaged in place keeps both). conf/base
    # turns it on (0.5 s for 5,279 PNGs); off here, the cheapest, as on an object store.
    verify_pngs: bool = False

    @field_validator("image_size", "via_size", mode="before")
    @classmethod
    def _square_from_one_number(cls, value: object) -> object:
        return (value, value) if isinstance(value, int) and not isinstance(value, bool) else value

    @property
    def output_settings(self) -> OutputSettings:
        """The four settings that decide a PNG's bytes, as one value for the data stage."""
        return OutputSettings(
            self.image_size,
            self.resize_mode,
            self.jpeg_draft,
            self.png_compress_level,
            self.contrast,
            self.border_crop,
            self.via_size,
        )


class SplitParams(StrictParams):
    """Train/validation split of the TRAIN images (the TEST split is kept as is)."""

    validation_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    # ``patient``: stratified by label, no patient on both sides (default).
    # ``stratified``: stratified by label only. ``random``: the write-up's
    # ``train_test_split(test_size=0.2, random_state=2)``, unstratified.
    strategy: Literal["patient", "stratified", "random"] = "patient"
    seed: int = 2
    # A TEST image with the same bytes as a TRAIN image is a leak: ``drop`` it from
    # TEST (listed in dropped_items and duplicate_images) or ``stop`` the run. Copies
    # within TRAIN always stay together on one side of the split.
    duplicates: Literal["drop", "stop"] = "drop"


class CrossValidationParams(StrictParams):
    """How the ``cross_validation`` pipeline folds TRAIN (``data.folds``).

    ``folds`` also sets how many ``fold_<i>`` namespaces the pipeline has: Kedro
    builds pipelines before any node runs, so the pipeline reads it from the
    configuration when the session starts (``pipelines.fold_count``).
    """

    folds: int = Field(5, ge=2, le=20)
    seed: int = 0  # of the fold assignment; the inner train/validation split uses split.seed
