"""Typed parameters of the three pipelines.

Kedro (1.3+) turns a ``params:`` input into the model named by the node's type
hint and validates it before any node runs, so a bad value in
``conf/*/parameters_*.yml`` or ``--params`` stops the run at start with a
message naming the field. The defaults reproduce the write-up's recipe.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from chest_xray.data.imaging import Contrast, OutputSettings, ResizeMode
from chest_xray.data.metadata import Task, task_classes
from chest_xray.files import require_local

# Shared with the code that takes these values outside the parameters
# (modeling.augmentation.RandomAffine, modeling.trainer, benchmarks/bench_memory.py): one
# list each.
FillMode = Literal["nearest", "reflect", "constant", "wrap"]
MixedPrecision = Literal["none", "float16", "bfloat16"]
ClassWeight = Literal["none", "balanced"]


class _Params(BaseModel):
    """Base: unknown keys are errors, so a typo in YAML never passes silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- data


class MetadataParams(_Params):
    """How the Kaggle metadata CSV is read."""

    # Raw ``Label`` spelling -> class name. The dataset spells it ``Pnemonia``.
    label_map: dict[str, Literal["NORMAL", "PNEUMONIA"]] = {
        "Normal": "NORMAL",
        "Pnemonia": "PNEUMONIA",
        "Pneumonia": "PNEUMONIA",
    }


class PreprocessingParams(_Params):
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
    workers: int = Field(0, ge=0)  # threads: 0 = one per CPU core; 1 = in the calling thread
    # Reuse the PNG of an image whose source bytes and settings are unchanged
    # since the last run (per preprocessing_log) instead of decoding it again.
    incremental: bool = True

    @field_validator("image_size", mode="before")
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
        )


class SplitParams(_Params):
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


# ----------------------------------------------------------------------- training


class ModelParams(_Params):
    """The write-up's VGG-style network."""

    conv_filters: list[PositiveInt] = [32, 64, 128, 128]
    kernel_size: PositiveInt = 3
    pool_size: PositiveInt = 2
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    dense_units: PositiveInt = 512
    # ``flatten`` is the write-up's head; ``global_average`` is far smaller and
    # faster on a CPU.
    head: Literal["flatten", "global_average"] = "flatten"
    # BatchNormalization after each convolution, before its ReLU (the conv then
    # drops its bias, which the normalisation's shift replaces). Off: the write-up.
    batch_norm: bool = False
    # ``standardize``: each image to zero mean and unit variance before the first
    # convolution (a stock LayerNormalization over height, width and channel), so
    # the overall exposure of a scan carries no signal. ``none``: the write-up's 1/255.
    input_normalisation: Literal["none", "standardize"] = "none"

    @field_validator("conv_filters")
    @classmethod
    def _at_least_one_conv(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("conv_filters needs at least one convolution")
        return value


class AugmentationParams(_Params):
    """Train-time augmentation, one random affine warp per image (write-up's settings).

    ``chest_xray.modeling.augmentation`` maps each field to the legacy generator's keyword.

    Setting a value to 0 (or ``horizontal_flip: false``) switches that transform
    off; ``enabled: false`` switches all of them off.
    """

    enabled: bool = True
    rotation_degrees: float = Field(40.0, ge=0.0, le=180.0)
    width_shift: float = Field(0.2, ge=0.0, lt=1.0)
    height_shift: float = Field(0.2, ge=0.0, lt=1.0)
    # ``ImageDataGenerator(shear_range=0.2)`` means 0.2 *degrees* (nearly
    # nothing); here ``shear`` is the slope (x moves by shear * y), as in the
    # shear intensity of Keras' ``RandomShear``.
    shear: float = Field(0.2, ge=0.0, lt=1.0)
    zoom: float = Field(0.2, ge=0.0, lt=1.0)
    horizontal_flip: bool = True
    fill_mode: FillMode = "nearest"
    # Intensity, after the warp (Keras' RandomBrightness / RandomContrast, 0 = off):
    # ``brightness`` adds a shift uniform in +-brightness of the full pixel range,
    # ``contrast`` scales each image about its mean by a factor in 1 +- contrast.
    # Scanners and exposure differ between hospitals; the geometry alone ignores that.
    brightness: float = Field(0.0, ge=0.0, lt=1.0)
    contrast: float = Field(0.0, ge=0.0, lt=1.0)
    # ``gamma`` raises pixels (0..1) to a power drawn log-uniformly in
    # [1 / (1 + gamma), 1 + gamma]: a detector's non-linear response, 0 = off.
    gamma: float = Field(0.0, ge=0.0, lt=2.0)


class OptimizerParams(_Params):
    """The optimiser and its learning rate: constant (the write-up) or a cosine schedule."""

    name: Literal["adam", "sgd", "rmsprop", "adamw"] = "adam"
    # The constant rate, or the peak of the cosine schedule (reached after warm-up).
    learning_rate: float = Field(1e-4, gt=0.0)
    # AdamW's decoupled weight decay; None keeps Keras' default (0.004). Only for adamw.
    weight_decay: float | None = Field(None, ge=0.0)
    # ``cosine``: from learning_rate down to 0 over the whole training (per batch), after
    # ``warmup_epochs`` of linear warm-up from 0; ``constant`` takes no warm-up.
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_epochs: int = Field(0, ge=0)
    # Weight averaging: Keras keeps an exponential moving average of the weights
    # (``use_ema``) and writes it into the model when training ends, so the model that
    # is evaluated and packaged is the average of the last ~1 / (1 - momentum) updates.
    ema: bool = False
    ema_momentum: float = Field(0.99, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _settings_that_would_be_ignored(self) -> OptimizerParams:
        if self.weight_decay is not None and self.name != "adamw":
            raise ValueError(
                f"weight_decay is for the adamw optimizer, not {self.name!r} "
                "(set name: adamw, or leave weight_decay unset)"
            )
        if self.warmup_epochs and self.schedule != "cosine":
            raise ValueError(
                "warmup_epochs needs schedule: cosine (a constant rate has no warm-up)"
            )
        return self


class EarlyStoppingParams(_Params):
    enabled: bool = False
    monitor: str = "val_loss"
    patience: PositiveInt = 10
    restore_best_weights: bool = True


class TrainingParams(_Params):
    """Everything that decides how the model is trained."""

    # ``binary``: NORMAL vs PNEUMONIA (``classes``), one sigmoid output (the write-up).
    # ``multiclass``: NORMAL, BACTERIA, VIRUS from ``Label_1_Virus_category`` (and
    # COVID-19 from ``Label_2_Virus_category`` with ``covid_class``), a softmax head;
    # the class names then come from the task (``class_names``), not from ``classes``.
    task: Task = "binary"
    # Multiclass only: COVID-19 as a fourth class (58 images in the whole dataset).
    covid_class: bool = False
    # Binary class names in label order: index 0 -> label 0. PNEUMONIA = 1 is the
    # positive class of every metric (the write-up used Normal = 1).
    classes: tuple[str, str] = ("NORMAL", "PNEUMONIA")
    seed: int = 42
    deterministic_ops: bool = False
    epochs: int = Field(60, ge=0)
    batch_size: PositiveInt = 32
    # Gradient accumulation: each batch is fed as this many equal micro-batches
    # whose gradients are averaged into one update. Same updates as whole
    # batches, with the activation memory of one micro-batch (validation and
    # prediction also run in micro-batches; docs/benchmarks.md).
    micro_batches: PositiveInt = 1
    model: ModelParams = ModelParams()
    augmentation: AugmentationParams = AugmentationParams()
    optimizer: OptimizerParams = OptimizerParams()
    early_stopping: EarlyStoppingParams = EarlyStoppingParams()
    # ``balanced`` weights each class by n_samples / (n_classes * n_class).
    class_weight: ClassWeight = "none"
    # Binary cross-entropy against 0/1 labels moved this far towards 1/2
    # (y * (1 - s) + s / 2): less over-confidence; 0 = plain labels.
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5)
    # Activations in 16 bits, weights in float32. ``bfloat16`` halves the memory
    # of a training step and, on CPUs with AVX512-BF16 or AMX, nearly halves its
    # time too (docs/benchmarks.md); ``float16`` is for GPUs.
    mixed_precision: MixedPrecision = "none"
    # ``mirrored``: every GPU of this machine. ``multi_worker``: every worker of the
    # cluster in TF_CONFIG (TensorFlow backend), each running the same ``kedro run``;
    # the global batch (``batch_size``) is split between them and only the chief saves
    # and logs (README "Training on several machines").
    distribution: Literal["default", "mirrored", "multi_worker"] = "default"
    # Per-epoch state for BackupAndRestore: a killed run resumes from here. A local
    # folder, also when the data layers are on an object store (``_local_checkpoints``).
    checkpoint_dir: str = "data/06_models/checkpoints"
    loader_threads: int = Field(0, ge=0)  # 0 = one per CPU core

    @field_validator("checkpoint_dir")
    @classmethod
    def _local_checkpoints(cls, value: str) -> str:
        # Checkpoints are the scratch state of one machine's run (a resumed run must
        # be the same run), rewritten every epoch and moved aside by renaming.
        return require_local(
            value,
            "training.checkpoint_dir",
            "checkpoints are this machine's scratch state for resuming its own run "
            "(rewritten every epoch, moved aside by renaming); keep them on a local disk",
        )

    @property
    def micro_batch_size(self) -> int:
        """Images per forward pass: training steps, validation and prediction alike."""
        return self.batch_size // self.micro_batches

    @property
    def class_names(self) -> tuple[str, ...]:
        """The model's classes in output order: ``classes`` (binary) or the task's."""
        return self.classes if self.task == "binary" else task_classes(self.task, self.covid_class)

    @model_validator(mode="after")
    def _covid_class_needs_multiclass(self) -> TrainingParams:
        if self.covid_class and self.task != "multiclass":
            raise ValueError("covid_class (a COVID-19 class) needs task: multiclass")
        return self

    @model_validator(mode="after")
    def _micro_batches_divide_the_batch(self) -> TrainingParams:
        if self.batch_size % self.micro_batches:
            raise ValueError(
                f"micro_batches ({self.micro_batches}) must divide batch_size ({self.batch_size})"
            )
        return self

    @model_validator(mode="after")
    def _warmup_leaves_epochs_to_decay(self) -> TrainingParams:
        warmup = self.optimizer.warmup_epochs
        if self.optimizer.schedule == "cosine" and self.epochs and warmup >= self.epochs:
            raise ValueError(
                f"optimizer.warmup_epochs ({warmup}) must be fewer than epochs ({self.epochs}): "
                "the cosine decay needs at least one epoch"
            )
        return self


class GalleryParams(_Params):
    n_images: PositiveInt = 16
    columns: PositiveInt = 4
    seed: int = 0


class BootstrapParams(_Params):
    """Percentile bootstrap intervals of the test metrics (``evaluation.bootstrap``)."""

    # Test sets resampled with replacement, each as large as the test set.
    resamples: int = Field(1000, ge=1000, le=100_000)
    seed: int = 0
    level: float = Field(0.95, ge=0.5, lt=1.0)  # 0.95: the 2.5th and 97.5th percentiles


class EvaluationParams(_Params):
    """How predictions become metrics.

    ``threshold``, ``validation_threshold``, ``target_prevalence`` and
    ``model_threshold`` are binary concepts: a multiclass model predicts the class
    of highest probability, and ``check_task_options`` refuses them set otherwise.
    """

    classes: tuple[str, str] = ("NORMAL", "PNEUMONIA")
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    # A second operating point chosen on the validation split:
    # ``youden`` maximises sensitivity + specificity - 1, ``accuracy`` maximises
    # validation accuracy, ``equal_error`` makes sensitivity and specificity as
    # equal as validation allows (no pull towards the class TRAIN has more of),
    # ``none`` reports only the fixed threshold.
    validation_threshold: Literal["youden", "accuracy", "equal_error", "none"] = "youden"
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


# ------------------------------------------------------------------------- inference


class InferenceParams(_Params):
    """How the ``inference`` pipeline predicts a folder of new images.

    The folder (``inference_root``) and the model (``model_uri``) are catalog
    settings (conf/base/globals.yml); preprocessing and threshold come with the model.
    """

    batch_size: PositiveInt = 32
    workers: int = Field(0, ge=0)  # decoding threads: 0 = one per CPU core
    # Grad-CAM overlays: ``all`` images, ``none``, or N: the N most confidently
    # positive and the N most confidently negative.
    gradcam: Literal["all", "none"] | PositiveInt = "all"
    progress: bool = True  # a progress bar on the console (not in the log)


# ------------------------------------------------------------------ cross-validation


class CrossValidationParams(_Params):
    """How the ``cross_validation`` pipeline folds TRAIN (``data.folds``).

    ``folds`` also sets how many ``fold_<i>`` namespaces the pipeline has: Kedro
    builds pipelines before any node runs, so the pipeline reads it from the
    configuration when the session starts (``pipelines.fold_count``).
    """

    folds: int = Field(5, ge=2, le=20)
    seed: int = 0  # of the fold assignment; the inner train/validation split uses split.seed


# -------------------------------------------------------------------- task options

# Binary-only evaluation settings: a multiclass model predicts the most probable class.
_BINARY_ONLY = ("threshold", "validation_threshold", "target_prevalence", "model_threshold")


def check_task_options(parameters: Mapping[str, Any]) -> None:
    """Refuse binary-only evaluation settings in a multiclass run, naming them.

    Called when a run starts (``hooks``), so the refusal comes before training, not
    after it. A setting left at its default is not "set": the defaults decide nothing
    for a multiclass model (``argmax``), a changed one would be silently ignored.
    """
    training = parameters.get("training") or {}
    if not isinstance(training, Mapping) or training.get("task", "binary") != "multiclass":
        return
    evaluation = parameters.get("evaluation") or {}
    defaults = EvaluationParams()
    changed = [
        f"evaluation.{name}={evaluation[name]!r}"
        for name in _BINARY_ONLY
        if isinstance(evaluation, Mapping)
        and name in evaluation
        and evaluation[name] != getattr(defaults, name)
    ]
    if changed:
        default_values = ", ".join(f"{n}={getattr(defaults, n)!r}" for n in _BINARY_ONLY)
        raise RuntimeParameterError(
            f"training.task=multiclass: {', '.join(changed)} apply to binary models only (a "
            "multiclass model predicts its most probable class); remove them or set them "
            f"back to their defaults ({default_values})"
        )


# ------------------------------------------------------------------ runtime parameters


class RuntimeParameterError(ValueError):
    """A ``--params`` key that names nothing, or a value the configuration cannot take."""


def check_runtime_params(runtime: Mapping[str, Any], configured: Mapping[str, Any]) -> None:
    """Refuse ``--params`` that would be silently ignored or fail deep in OmegaConf.

    ``configured`` holds every parameter and global value the configuration
    defines (without the runtime ones). A key that is in neither (``epochs=3``
    instead of ``training.epochs=3``) names the nearest known one; a value set
    inside a list (``preprocessing.image_size.0=0``) says how to set the list.
    Unknown keys *inside* a group are the typed parameters' business
    (``extra="forbid"``).
    """
    known = sorted(dotted(configured))
    for path, value in dotted(runtime).items():
        top = path.split(".")[0]
        if top not in configured:
            nearest = difflib.get_close_matches(path, known, n=1, cutoff=0.5) or (
                difflib.get_close_matches(top, list(configured), n=1, cutoff=0.5)
            )
            hint = f"; did you mean {nearest[0]!r}?" if nearest else ""
            raise RuntimeParameterError(
                f"--params sets {path}={value!r}, but {top!r} is no parameter of this "
                f"project{hint} (nested values name their group: training.epochs=3)"
            )
        node: Any = configured
        for depth, part in enumerate(path.split(".")):
            if isinstance(node, list | tuple):
                parent = ".".join(path.split(".")[:depth])
                raise RuntimeParameterError(
                    f"--params sets {path}, inside the list {parent}={list(node)}: set the "
                    f"whole value instead (preprocessing.image_size=224 means 224x224; for "
                    f"other lists, conf/local/parameters_<pipeline>.yml)"
                )
            if not isinstance(node, Mapping) or part not in node:
                break
            node = node[part]


def dotted(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (with ``prefix``: ``{"p.a.b": 1}``); lists and
    empty mappings stay whole. The names ``--params`` and MLflow's parameters use."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(dotted(value, name))
        else:
            flat[name] = value
    return flat
