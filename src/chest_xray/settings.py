"""Project settings: Kedro wiring only. Defaults: https://docs.kedro.org/en/stable/configure/"""

from kedro.config import OmegaConfigLoader
from omegaconf.resolvers import oc

from chest_xray.tracking.hooks import MlflowHooks

HOOKS = (MlflowHooks(),)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment (conf/cpu, conf/demo, ...) overrides single nested values
    # instead of replacing a whole parameter group.
    "merge_strategy": {"parameters": "soft", "globals": "soft"},
    # ${oc.env:...} outside credentials: MLFLOW_TRACKING_URI overrides mlflow.yml.
    "custom_resolvers": {"oc.env": oc.env},
}
