"""Typed parameters of the training stage (``training`` in ``parameters_training.yml``):
the network, its augmentation, the optimiser, early stopping and how training runs.

Beside the ``modeling`` package they configure; no Keras here, so the Kedro hooks can
validate them without loading TensorFlow. ``chest_xray.params`` gathers every stage's
classes in one place.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, field_validator, model_validator

from chest_xray.data.files import require_local
from chest_xray.data.metadata import Task, task_classes
from chest_xray.data.params import StrictParams

# Shared with the code that takes these values outside the parameters
# (modeling.augmentation.RandomAffine, modeling.trainer, benchmarks/bench_memory.py): one
# list each.
FillMode = Literal["nearest", "reflect", "constant", "wrap"]
MixedPrecision = Literal["auto", "none", "float16", "bfloat16"]
ClassWeight = Literal["none", "balanced"]


class ModelParams(StrictParams):
    """The write-up's VGG-style network."""

    conv_filters: list[PositiveInt] = [32, 64, 128, 128]  # noqa: RUF012 - a pydantic field
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
    # A wider VGG: every entry of ``conv_filters`` times ``width`` (rounded), the same
    # depth and head. 1: the write-up's network. Compute grows about as width squared.
    width: float = Field(1.0, gt=0.0, le=4.0)

    @field_validator("conv_filters")
    @classmethod
    def _at_least_one_conv(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("conv_filters needs at least one convolution")
        return value


class AugmentationParams(StrictParams):
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
    # Batch mixing (Keras' MixUp / CutMix, ``modeling.mixing``): each train image blended
    # with (``mixup``) or patched from (``cutmix``) another of its batch, its label mixed in
    # the same proportion. ``mixing_strength``: MixUp's alpha / CutMix's factor; None keeps
    # Keras' default (0.2 / 1.0). Off: the write-up.
    mixing: Literal["none", "mixup", "cutmix"] = "none"
    mixing_strength: float | None = Field(None, gt=0.0, le=1.0)


class OptimizerParams(StrictParams):
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


class EarlyStoppingParams(StrictParams):
    enabled: bool = False
    monitor: str = "val_loss"
    patience: PositiveInt = 10
    restore_best_weights: bool = True


class TrainingParams(StrictParams):
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
    # time too (docs/benchmarks.md); ``float16`` is for GPUs. ``auto``: bfloat16 on
    # such a CPU, float16 on a GPU with Tensor Cores, else float32 (modeling.precision);
    # ``none``: float32.
    mixed_precision: MixedPrecision = "auto"
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
    def _mixing_keeps_labels_weighable(self) -> TrainingParams:
        # Keras turns class_weight into a weight per sample by its label as an integer
        # index: a mixed label (0.3) would silently take class 0's weight.
        mixing = self.augmentation.mixing
        if self.augmentation.enabled and mixing != "none" and self.class_weight != "none":
            raise ValueError(
                f"augmentation.mixing: {mixing} mixes the labels, which class_weight: "
                f"{self.class_weight} cannot weigh; use one or the other"
            )
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
