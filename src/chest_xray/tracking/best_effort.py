"""Tracking must never cost a result: a failure to log is a warning, the run goes on. But a
run that missed some of its logging must not look complete: every failure is remembered
until the run ends, and ``RunLifecycleHooks`` then marks the run FAILED, saying what is
missing (a store that fails mid-run used to leave a FINISHED run with zero metrics)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

logger = logging.getLogger(__name__)

# What failed to log since the current run started. One tracked run at a time per
# process (kedro-mlflow's own hook is a process-wide instance too).
_failures: list[str] = []


@contextlib.contextmanager
def best_effort(what: str) -> Iterator[None]:
    """Run the block; an exception in it is logged as a warning (with traceback), not raised."""
    try:
        yield
    except Exception:
        logger.warning("MLflow: %s failed; the run goes on", what, exc_info=True)
        _failures.append(what)


def forget_failures() -> None:
    """A new run starts with a clean record."""
    _failures.clear()


def failures() -> list[str]:
    """What failed to log since the current run started, in order."""
    return list(_failures)
