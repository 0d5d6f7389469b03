"""Tracking must never cost a result: a failure to log is a warning, the run goes on."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def best_effort(what: str) -> Iterator[None]:
    """Run the block; an exception in it is logged as a warning (with traceback), not raised."""
    try:
        yield
    except Exception:
        logger.warning("MLflow: %s failed; the run goes on", what, exc_info=True)
