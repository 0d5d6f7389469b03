"""Project settings: Kedro wiring only. Defaults: https://docs.kedro.org/en/stable/configure/"""

from kedro.config import OmegaConfigLoader

from chest_xray.hooks import MlflowHooks

HOOKS = (MlflowHooks(),)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment (conf/cpu, conf/demo, ...) overrides single nested values
    # instead of replacing a whole parameter group.
    "merge_strategy": {"parameters": "soft", "globals": "soft"},
}
