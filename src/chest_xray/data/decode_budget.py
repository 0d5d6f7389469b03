"""How much memory the images being decoded at once may take, process-wide.

A decoded image costs its pixel count times the bytes per pixel of its mode
(Pillow keeps ``L`` in one byte, ``I;16`` in two, colour and 32-bit modes in
four), plus the 8-bit grey copy made from it. The file's size says nothing of
that: a 229 KB PNG of a flat 16-bit field is 9400x9400 pixels, 177 MB decoded.
Every decode (the preprocessing's thread pool, the CLI's, the served model's
requests) asks this gate for its estimated cost first, so a handful of such
files at once wait for each other instead of taking the host's memory.

The budget is ``CHEST_XRAY_DECODE_MEMORY_MB`` (default 1024) or
``set_decode_memory``. One image costing more than the whole budget still
decodes, alone (its own size is bounded by the pixel limit, ``imaging.decode``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)

DECODE_MEMORY_ENV = "CHEST_XRAY_DECODE_MEMORY_MB"
DEFAULT_DECODE_MEMORY_MB = 1024
_MB = 1024 * 1024

# Bytes per pixel of Pillow's in-memory modes; four for every other mode.
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
# Modes that go through RGBA and RGB on their way to grey (``imaging.to_grey``).
_VIA_RGBA = ("LA", "PA", "P", "RGBA")


def decode_cost(mode: str, pixels: int) -> int:
    """Estimated peak bytes of decoding a ``mode`` image of ``pixels`` and making it grey."""
    per_pixel = _BYTES_PER_PIXEL.get(mode, 4) + 1  # the image, and its grey copy
    if mode in _VIA_RGBA:
        per_pixel += 8
    return pixels * per_pixel


class DecodeBudget:
    """A counting gate over bytes: decodes run while their costs fit in ``limit`` together."""

    def __init__(self, limit: int) -> None:
        self._used = 0
        self._running = 0
        self._changed = threading.Condition()
        self.limit = 0
        self.set_limit(limit)

    def set_limit(self, limit: int) -> None:
        """A new limit, in bytes; waiting decodes are woken to check it."""
        if limit <= 0:
            raise ValueError(f"the decode memory budget must be positive, got {limit} bytes")
        with self._changed:
            self.limit = limit
            self._changed.notify_all()

    @contextmanager
    def admit(self, cost: int) -> Iterator[None]:
        """Wait until ``cost`` fits beside the decodes running (or none runs), then hold it."""
        with self._changed:
            self._changed.wait_for(lambda: self._running == 0 or self._used + cost <= self.limit)
            self._used += cost
            self._running += 1
        try:
            yield
        finally:
            with self._changed:
                self._used -= cost
                self._running -= 1
                self._changed.notify_all()

    @property
    def in_use(self) -> int:
        """Bytes held by the decodes running now (for tests and benchmarks)."""
        with self._changed:
            return self._used


def _budget_from_environment() -> int:
    """The environment's budget; a bad value is said once and the default used, since this
    runs at import, where an error would be a traceback, not a message."""
    value = os.environ.get(DECODE_MEMORY_ENV, "")
    try:
        megabytes = int(value) if value else DEFAULT_DECODE_MEMORY_MB
    except ValueError:
        megabytes = 0
    if megabytes <= 0:
        logger.warning(
            "%s must be a positive number of megabytes, got %r: using %d",
            DECODE_MEMORY_ENV,
            value,
            DEFAULT_DECODE_MEMORY_MB,
        )
        megabytes = DEFAULT_DECODE_MEMORY_MB
    return megabytes * _MB


_budget = DecodeBudget(_budget_from_environment())


def decode_budget() -> DecodeBudget:
    """The process's gate (``imaging.prepare`` holds it while an image becomes grey)."""
    return _budget


def set_decode_memory(megabytes: int) -> None:
    """Change the process's budget (decodes already admitted keep running)."""
    _budget.set_limit(megabytes * _MB)
