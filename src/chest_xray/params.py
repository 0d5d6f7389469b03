"""Typed parameters of the pipelines, in one place, and the checks of the whole
configuration that run before any node does.

Kedro (1.3+) turns a ``params:`` input into the model named by the node's type
hint and validates it before any node runs, so a bad value in
``conf/*/parameters_*.yml`` or ``--params`` stops the run at start with a
message naming the field. The defaults reproduce the write-up's recipe.

Each stage's classes live beside the package they configure: ``data.params``
(metadata, preprocessing, split, cross-validation folds), ``modeling.params``
(training), ``evaluation.params`` and ``inference.params``. This module gathers them,
so that ``from chest_xray.params import X`` reads any of them, and holds what needs
more than one stage's parameters: ``check_task_options`` and ``check_runtime_params``,
which the hooks call when a run starts (``hooks.RuntimeParamsHooks``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from chest_xray.data.params import (
    CrossValidationParams,
    MetadataParams,
    PreprocessingParams,
    SplitParams,
    StrictParams,
)
from chest_xray.evaluation.params import (
    BootstrapParams,
    EvaluationParams,
    GalleryParams,
    OodParams,
)
from chest_xray.inference.params import InferenceParams
from chest_xray.modeling.params import (
    AugmentationParams,
    ClassWeight,
    EarlyStoppingParams,
    FillMode,
    MixedPrecision,
    ModelParams,
    OptimizerParams,
    TrainingParams,
)

__all__ = [
    "AugmentationParams",
    "BootstrapParams",
    "ClassWeight",
    "CrossValidationParams",
    "EarlyStoppingParams",
    "EvaluationParams",
    "FillMode",
    "GalleryParams",
    "InferenceParams",
    "MetadataParams",
    "MixedPrecision",
    "ModelParams",
    "OodParams",
    "OptimizerParams",
    "PreprocessingParams",
    "RuntimeParameterError",
    "SplitParams",
    "StrictParams",
    "TrainingParams",
    "check_runtime_params",
    "check_task_options",
    "dotted",
]

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
