"""What ``scripts/ablation.py`` runs: each configuration, the parameters it overrides.

A configuration is a name and the ``--params`` it sets on top of ``conf/cpu`` and
``COMMON``; the rounds are kept in the order they ran, each with why it was run, so that
every record in ``docs/ablation/`` still says what it measured (docs/model_quality.md).
"""

from __future__ import annotations

# One run's overrides: a dotted parameter name (``training.epochs``) and its value.
Overrides = dict[str, object]

# Every run: bfloat16 activations (1.9x faster epochs on a CPU with AVX512-BF16,
# docs/benchmarks.md), and the dev test split's own prevalence (62.5%, as the official
# TEST's) is what its accuracy is measured at.
# And conf/cpu's network and optimiser as they were before the ranking screening made
# standardisation and AdamW + cosine the defaults (2026-12-06), so that every configuration
# below still means what it meant when it ran (the screening's levers set them again).
PRE_SCREENING: Overrides = {
    "training.model.input_normalisation": "none",
    "training.optimizer.name": "adam",
    "training.optimizer.learning_rate": 1e-4,
    "training.optimizer.schedule": "constant",
    "training.optimizer.warmup_epochs": 0,
    # conf/cpu trained 15 epochs until 2026-12-07 (then 30, then 60): the configurations
    # that set no length meant 15.
    "training.epochs": 15,
    # The validation threshold was Youden's until 2026-12-08 (then the equal-error point):
    # every record's "@val" figures are Youden's; scripts/threshold_rules.py gives the rest.
    "evaluation.validation_threshold": "youden",
}
COMMON: Overrides = {"training.mixed_precision": "bfloat16", **PRE_SCREENING}
MILD_CPU: Overrides = {
    "training.augmentation.rotation_degrees": 10,
    "training.augmentation.width_shift": 0.1,
    "training.augmentation.height_shift": 0.1,
    "training.augmentation.shear": 0.0,
    "training.augmentation.zoom": 0.1,
    "training.optimizer.learning_rate": 3e-4,
    "training.early_stopping.enabled": True,
    "training.early_stopping.patience": 4,
}
WRITEUP_AUG: Overrides = {
    "training.augmentation.rotation_degrees": 40,
    "training.augmentation.width_shift": 0.2,
    "training.augmentation.height_shift": 0.2,
    "training.augmentation.shear": 0.2,
    "training.augmentation.zoom": 0.2,
}
WRITEUP_PLAIN: Overrides = WRITEUP_AUG | {
    "training.optimizer.learning_rate": 1e-4,
    "training.early_stopping.enabled": False,
}
INTENSITY: Overrides = {
    "training.augmentation.brightness": 0.1,
    "training.augmentation.contrast": 0.2,
}
CONFIGS: dict[str, Overrides] = {
    # conf/cpu before 2026-11-30: milder augmentation, a higher rate, early stopping
    "baseline": MILD_CPU,
    "cpu": {},  # conf/cpu before the ranking screening (= writeup_plain)
    "writeup_aug": WRITEUP_AUG,
    "writeup_aug_intensity_balanced": WRITEUP_AUG
    | INTENSITY
    | {"training.class_weight": "balanced"},
    "writeup_aug_bn_gap": WRITEUP_AUG
    | {"training.model.batch_norm": True, "training.model.head": "global_average"},
    "writeup_aug_no_early_stop": WRITEUP_AUG | {"training.early_stopping.enabled": False},
    # The write-up's optimisation as well (learning rate 1e-4, every epoch trained): the
    # recipe that measured best for specificity on the official TEST at 150 px.
    "writeup_plain": WRITEUP_PLAIN,
    "writeup_plain_balanced": WRITEUP_PLAIN | {"training.class_weight": "balanced"},
    # Grad-CAM of the baseline lights up the "R" marker in the top corner for PNEUMONIA:
    # cut 8% of each side (markers, text, film edges) before the resize.
    "writeup_plain_crop": WRITEUP_PLAIN | {"preprocessing.border_crop": 0.08},
    "writeup_plain_clahe_balanced": WRITEUP_PLAIN
    | {"training.class_weight": "balanced", "preprocessing.contrast": "clahe"},
    # The fold screening's clearest lever (docs/model_quality.md), at the recipe's scale.
    "writeup_plain_standardize": WRITEUP_PLAIN
    | {"training.model.input_normalisation": "standardize"},
    "writeup_plain_standardize_balanced": WRITEUP_PLAIN
    | {"training.class_weight": "balanced", "training.model.input_normalisation": "standardize"},
}

# The ranking screening (issue #21), 2026-12-06: every lever on top of frozen candidate B
# (conf/cpu + per-image standardisation), 3 seeds each (--seeds 42 7 13).
STANDARDIZE: Overrides = {"training.model.input_normalisation": "standardize"}
ADAMW_COSINE: Overrides = {
    "training.optimizer.name": "adamw",
    "training.optimizer.schedule": "cosine",
    "training.optimizer.warmup_epochs": 1,
    "training.optimizer.learning_rate": 3e-4,
}
CONFIGS |= {
    "std": STANDARDIZE,
    "std_adamw_cosine": STANDARDIZE | ADAMW_COSINE,
    "std_ema": STANDARDIZE
    | {"training.optimizer.ema": True, "training.optimizer.ema_momentum": 0.995},
    "std_bn": STANDARDIZE | {"training.model.batch_norm": True},
    "std_e30": STANDARDIZE | {"training.epochs": 30},
    "std_224": STANDARDIZE | {"preprocessing.image_size": 224},
}
# The second round: on top of the first round's winner (AdamW + cosine, +0.004 AUC, its
# validation threshold steady at 0.73 +- 0.004), BatchNorm, then epochs and resolution.
STD_AW_BN: Overrides = STANDARDIZE | ADAMW_COSINE | {"training.model.batch_norm": True}
CONFIGS |= {
    "std_aw_bn": STD_AW_BN,
    "std_aw_bn_e30": STD_AW_BN | {"training.epochs": 30},
    "std_aw_bn_224": STD_AW_BN | {"preprocessing.image_size": 224},
    # BatchNorm costs 2.5x the epoch time in bfloat16 on this CPU: epochs and resolution
    # are also screened without it.
    "std_aw_e30": STANDARDIZE | ADAMW_COSINE | {"training.epochs": 30},
    "std_aw_224": STANDARDIZE | ADAMW_COSINE | {"preprocessing.image_size": 224},
}
# The third round (2026-12-07, a CPU with AMX): on top of the new conf/cpu (std_aw_e30),
# what the official TEST measured as its levers (length, resolution) and a wider VGG
# (training.model.width). Test-time augmentation is measured on these runs' packages
# (scripts/tta_check.py): it changes no training.
STD_AW: Overrides = STANDARDIZE | ADAMW_COSINE
CONFIGS |= {
    "std_aw_e60": STD_AW | {"training.epochs": 60},
    "std_aw_224_e30": STD_AW | {"preprocessing.image_size": 224, "training.epochs": 30},
    # 1.5x the filters: about 2.2x the convolutions' cost (width 2: about 4x, over the
    # CPU budget of a 3-seed screening)
    "std_aw_e30_wide": STD_AW | {"training.epochs": 30, "training.model.width": 1.5},
}
# The fourth round (2026-12-07, an AMD CPU without AMX): the regularisers the issue names
# that were not built before, batch mixing with Keras' MixUp (alpha 0.2) and CutMix
# (factor 1.0), at 30 epochs so they are compared with std_aw_e30 seed by seed (mixing
# is known to need longer training than the plain recipe to pay off).
CONFIGS |= {
    "std_aw_e30_mixup": STD_AW | {"training.epochs": 30, "training.augmentation.mixing": "mixup"},
    "std_aw_e30_cutmix": STD_AW | {"training.epochs": 30, "training.augmentation.mixing": "cutmix"},
}
# The fifth round (2026-12-07, a CPU with AMX): past conf/cpu's 60 epochs, where 60 beat 30
# on every seed, and width on top of that length (each about 20 minutes a run on the dev
# split, over the CPU default's budget on all of TRAIN: levers for conf/base).
CONFIGS |= {
    "std_aw_e90": STD_AW | {"training.epochs": 90},
    "std_aw_e60_wide": STD_AW | {"training.epochs": 60, "training.model.width": 1.5},
}
# The sixth round: MixUp at conf/cpu's length. At 30 epochs it ranked as without it
# (round 4), and mixing is known to pay off late; it costs little time per epoch, so at 60
# epochs it would fit the CPU default's budget if it won.
CONFIGS |= {
    "std_aw_e60_mixup": STD_AW | {"training.epochs": 60, "training.augmentation.mixing": "mixup"},
}
# The seventh round: conf/base itself (300 px, 60 epochs) on the dev split, the resolution
# the screening had not reached. This copy's TRAIN images are 224 px, so at 300 px every
# training image is upsampled while the official TEST's originals are downsampled: the
# run's package also goes to scripts/resample_shift.py.
CONFIGS |= {"std_aw_300_e60": STD_AW | {"training.epochs": 60, "preprocessing.image_size": 300}}
# The eighth round: candidate E (224 px, 60 epochs) on the dev split, the one frozen
# candidate the screening had not run. At 224 px this copy's TRAIN images reach the network
# unresized, and an original takes nearly the path its copy took: the run's package also
# goes to scripts/resample_shift.py, to set beside the 150 and 300 px measurements.
CONFIGS |= {"std_aw_224_e60": STD_AW | {"training.epochs": 60, "preprocessing.image_size": 224}}


# The cross-validation screening's scale (--cross-validation): about 9 minutes a config on
# 2 AVX-512 cores, against 18-20 for one 150 px, 15-epoch run.
CV_SCALE: Overrides = {
    "preprocessing.image_size": 96,
    "training.epochs": 6,
    "cross_validation.folds": 3,
}
CV_CONFIGS: dict[str, Overrides] = {
    "cpu": {},
    "cpu_bn_gap": {"training.model.batch_norm": True, "training.model.head": "global_average"},
    "cpu_label_smoothing": {"training.label_smoothing": 0.1},
    "cpu_adamw_cosine": {
        "training.optimizer.name": "adamw",
        "training.optimizer.schedule": "cosine",
        "training.optimizer.warmup_epochs": 1,
        "training.optimizer.learning_rate": 3e-4,
    },
    "cpu_standardize": {"training.model.input_normalisation": "standardize"},
    "cpu_intensity": INTENSITY,
    "cpu_balanced": {"training.class_weight": "balanced"},
    "cpu_clahe": {"preprocessing.contrast": "clahe"},
    "cpu_crop": {"preprocessing.border_crop": 0.08},
    "cpu_tta_flip": {"evaluation.tta": "flip"},
}
