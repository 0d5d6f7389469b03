"""Project hooks that are not about tracking (those are in ``chest_xray.tracking``)."""

from __future__ import annotations

import copy

from kedro.config import MissingConfigException
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl

from chest_xray.params import check_runtime_params


class RuntimeParamsHooks:
    """Check ``kedro run --params`` against the configuration before anything runs."""

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: KedroContext) -> None:
        """A mistyped top-level key (``epochs=3``) would otherwise be ignored without a word,
        and a value set inside a list fail later in OmegaConf's merge without naming it."""
        loader = context.config_loader
        runtime = getattr(loader, "runtime_params", None) or {}
        if not runtime:
            return
        plain = copy.copy(loader)  # the same configuration, without the runtime values
        plain.runtime_params = {}
        configured: dict[str, object] = {}
        for key in ("globals", "parameters"):
            try:
                configured.update(plain[key] or {})
            except MissingConfigException:
                continue
        check_runtime_params(runtime, configured)
