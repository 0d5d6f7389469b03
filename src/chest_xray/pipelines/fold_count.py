"""How many ``fold_<i>`` namespaces the ``cross_validation`` pipeline is built with.

Kedro builds pipelines from code, before any parameter reaches a node, but the
number of folds is a parameter (``cross_validation.folds``). So the project
hook ``CrossValidationHooks`` reads it from the session's configuration
(``conf/<env>`` and ``--params``) as soon as the context exists, before the
session first asks for a pipeline, and ``create_pipeline`` reads it here.
Outside a session (a plain ``find_pipelines()``) the pipeline has
``DEFAULT_FOLDS`` folds, the value in ``conf/base/parameters_cross_validation.yml``.
"""

from __future__ import annotations

from typing import Any

DEFAULT_FOLDS = 5
# Bounds of the pipeline's structure; CrossValidationParams refuses a value outside them
# with a message naming the parameter when the run starts.
MIN_FOLDS, MAX_FOLDS = 2, 20

_configured: int | None = None


def fold_count() -> int:
    """The number of folds the session configured, else ``DEFAULT_FOLDS``."""
    return DEFAULT_FOLDS if _configured is None else _configured


def configure(parameters: dict[str, Any]) -> bool:
    """Take ``cross_validation.folds`` from the session's parameters; True when it changed.

    A value that is not a whole number in [MIN_FOLDS, MAX_FOLDS] leaves the
    structure at its nearest bound; the parameter validation then stops the run
    naming the parameter.
    """
    global _configured  # noqa: PLW0603 - one process, one configured session at a time
    value = (parameters.get("cross_validation") or {}).get("folds", DEFAULT_FOLDS)
    try:
        folds = min(max(int(value), MIN_FOLDS), MAX_FOLDS)
    except (TypeError, ValueError):
        folds = DEFAULT_FOLDS
    changed = folds != fold_count()
    _configured = folds
    return changed


def reset() -> None:
    """Forget the session's value (back to ``DEFAULT_FOLDS``): for a process that ends a
    session with another value and goes on without one (the tests)."""
    global _configured  # noqa: PLW0603
    _configured = None
