"""Project settings: Kedro wiring only. Defaults: https://docs.kedro.org/en/stable/configure/"""

from typing import Any

from kedro.config import OmegaConfigLoader
from omegaconf.resolvers import oc

from chest_xray.hooks import CrossValidationHooks, RequireTestSplitHooks, RuntimeParamsHooks
from chest_xray.pipelines.training.hooks import MultiWorkerHooks
from chest_xray.summary.hook import InputErrorHooks, RunSummaryHooks
from chest_xray.tracking.content import RunContentHooks
from chest_xray.tracking.lifecycle import RunLifecycleHooks

# pluggy calls hooks of one kind last-registered first: RuntimeParamsHooks checks --params
# (naming a mistyped key) before CrossValidationHooks reads the merged parameters.
HOOKS = (
    RunSummaryHooks(),  # first: its after_pipeline_run prints after every other hook's lines
    CrossValidationHooks(),
    RuntimeParamsHooks(),
    RequireTestSplitHooks(),
    RunLifecycleHooks(),
    RunContentHooks(),
    MultiWorkerHooks(),  # after the tracking hooks: its tryfirst hooks run before theirs
    InputErrorHooks(),  # last: first of all, before another hook can raise
)

# TensorFlow's C++ logging is set quiet when the package is imported (chest_xray/__init__,
# quiet_start), before anything imports TensorFlow; third-party Python warnings and
# MLflow's database set-up lines in conf/logging.yml.

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS: dict[str, Any] = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment (conf/cpu, conf/demo, ...) overrides single nested values
    # instead of replacing a whole parameter group.
    "merge_strategy": {"parameters": "soft", "globals": "soft"},
    # ${oc.env:...} outside credentials: MLFLOW_TRACKING_URI overrides mlflow.yml.
    "custom_resolvers": {"oc.env": oc.env},
}
