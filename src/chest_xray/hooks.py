"""Project hooks that are not about tracking (those are in ``chest_xray.tracking``)."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

from kedro.config import MissingConfigException
from kedro.framework import project
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.pipeline import Node, Pipeline

from chest_xray.data.splitting import require_test_split
from chest_xray.params import check_runtime_params, check_task_options
from chest_xray.pipelines import fold_count


class RuntimeParamsHooks:
    """Check ``kedro run --params`` against the configuration before anything runs, and
    the evaluation settings against ``training.task`` (``params.check_task_options``)."""

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: KedroContext) -> None:
        """A mistyped top-level key (``epochs=3``) would otherwise be ignored without a word,
        and a value set inside a list fail later in OmegaConf's merge without naming it.
        A binary-only evaluation setting in a multiclass run is refused here, not after
        the training."""
        loader = context.config_loader
        runtime = getattr(loader, "runtime_params", None) or {}
        if runtime:  # first: a value set inside a list cannot even be merged
            plain = copy.copy(loader)  # the same configuration, without the runtime values
            plain.runtime_params = {}
            configured: dict[str, object] = {}
            for key in ("globals", "parameters"):
                try:
                    configured.update(plain[key] or {})
                except MissingConfigException:
                    continue
            check_runtime_params(runtime, configured)
        with contextlib.suppress(MissingConfigException):
            check_task_options(loader["parameters"] or {})  # --params included


class CrossValidationHooks:
    """Build the ``cross_validation`` pipeline with the configured number of folds.

    Kedro asks for the pipelines after this hook (``KedroSession.run``), so the
    pipeline reads ``cross_validation.folds`` from this session's configuration,
    ``--params`` included (``pipelines.fold_count``). A process
    that opens a second session with another value (a notebook, the tests) has
    its pipelines built again.
    """

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: KedroContext) -> None:
        try:
            # The raw configuration: ``context.params`` would build the pipelines to
            # validate the parameters, with the old count.
            parameters = context.config_loader["parameters"]
        except MissingConfigException:
            parameters = {}
        except (TypeError, ValueError):
            return  # --params that cannot be merged: RuntimeParamsHooks names the key
        if fold_count.configure(dict(parameters)) and project.PACKAGE_NAME:
            # Read now: the package is known once the project is configured.
            project.pipelines.configure(f"{project.PACKAGE_NAME}.pipeline_registry")


class RequireTestSplitHooks:
    """Stop a run that evaluates as soon as its split shows no test image
    (``splitting.require_test_split``), instead of after the training."""

    SPLIT_NODE = "split_dataset"
    EVALUATING_NODE = "evaluate"  # raises on an empty test split itself, after the training

    def __init__(self) -> None:
        self._evaluates = False

    @hook_impl
    def before_pipeline_run(self, pipeline: Pipeline) -> None:
        self._evaluates = any(node.name == self.EVALUATING_NODE for node in pipeline.nodes)

    @hook_impl
    def after_node_run(self, node: Node, outputs: dict[str, Any]) -> None:
        if self._evaluates and node.name == self.SPLIT_NODE:
            require_test_split(outputs["split_manifest"])
