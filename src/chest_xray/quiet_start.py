"""TensorFlow's start-up lines held to ``TF_CPP_MIN_LOG_LEVEL``, from its first import.

``TF_CPP_MIN_LOG_LEVEL=2`` (set in ``chest_xray/__init__``, unless the user set it) keeps
TensorFlow's C++ INFO and WARNING lines out of the terminal, but not all of them. While
its shared libraries load, TensorFlow 2.21 logs through Abseil before Abseil's logging is
initialised, and such lines ignore every level setting (abseil-cpp pull requests #1718 and
#1957): "WARNING: All log messages before absl::InitializeLog() is called are written to
STDERR", then INFO lines that oneDNN is on and that no CUDA driver was found, once for each
library that carries its own Abseil (twice). The GPU build on a machine without a driver
then logs the failed ``cuInit`` as an ERROR at the first device query, though it only says
again what the INFO line said: no GPU here. ``kedro run`` printed all of that twice.

``install()`` puts a finder first on ``sys.meta_path`` that wraps the first import of
``tensorflow`` (whoever imports it: Keras, a node, the served model) and its first device
query: what they write on file descriptor 2 is held in a temporary file and then written
back, minus the lines below the level TensorFlow was asked for (``held_to_level``). Every
other line, an error included, comes back unchanged and in order; if the import fails,
everything comes back. Nothing is changed after the import: TensorFlow's own level
setting applies from then on.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from types import ModuleType

LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
# Abseil's and TensorFlow's C++ prefix: severity letter, MMDD, time (its seconds may be a
# whole epoch count: 00:00:1796608578.752168), thread id, file:line]
_LOG_LINE = re.compile(rb"^([IWEF])\d{4} \d+:\d+:\d+(?:\.\d+)? +\d+ [^ \]]+:\d+\] ")
_PRE_INIT_BANNER = b"WARNING: All log messages before absl::InitializeLog() is called"
_NO_DRIVER = b"Could not find cuda drivers on your machine"
_CUINIT_FAILED = b"failed call to cuInit"


def min_log_level() -> int:
    """``TF_CPP_MIN_LOG_LEVEL`` as TensorFlow reads it: 0 (everything) when unset or bad."""
    try:
        return max(0, int(os.environ.get(LEVEL_VARIABLE, "0")))
    except ValueError:
        return 0


def held_to_level(output: bytes, min_level: int) -> bytes:
    """``output`` without the C++ log lines below ``min_level``, nor Abseil's banner about
    them, nor (above INFO) cuInit's failure on a machine with no CUDA driver at all."""
    if min_level <= 0:
        return output
    lines = output.splitlines(keepends=True)
    no_driver = any(_NO_DRIVER in line for line in lines)
    return b"".join(line for line in lines if not _dropped(line, min_level, no_driver))


def _dropped(line: bytes, min_level: int, no_driver: bool) -> bool:
    if line.startswith(_PRE_INIT_BANNER):
        return True
    match = _LOG_LINE.match(line)
    if match is None:
        return False  # not TensorFlow's C++ logging: always kept
    if no_driver and _CUINIT_FAILED in line:
        return True
    return _SEVERITY[match.group(1).decode()] < min_level


@contextlib.contextmanager
def stderr_held_to_level(min_level: int) -> Iterator[None]:
    """Hold what is written on descriptor 2; write it back through ``held_to_level``
    (all of it, if the block raises)."""
    try:
        saved = os.dup(2)
    except OSError:  # no standard error to hold
        yield
        return
    _flush_stderr()
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        complete = False
        try:
            yield
            complete = True
        finally:
            _flush_stderr()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            output = held.read()
            kept = held_to_level(output, min_level) if complete else output
            if kept:
                os.write(2, kept)


def _flush_stderr() -> None:
    with contextlib.suppress(Exception):
        sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    """The real loader of ``tensorflow``, run with descriptor 2 held."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with stderr_held_to_level(min_log_level()):
            self._loader.exec_module(module)
            # The first device query, where the GPU build calls cuInit; a TensorFlow
            # without it still imports (the query then runs later, unheld).
            with contextlib.suppress(Exception):
                module.config.list_physical_devices()
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader  # as if imported without this finder
        module.__loader__ = self._loader


class _FirstTensorFlowImport(importlib.abc.MetaPathFinder):
    """Wraps the first import of ``tensorflow`` in ``_QuietLoader``, then steps aside."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        uninstall()
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _QuietLoader(spec.loader)
        return spec


def install() -> None:
    """Hold TensorFlow's first import to its level setting (once; not if already imported)."""
    if "tensorflow" in sys.modules or any(
        isinstance(finder, _FirstTensorFlowImport) for finder in sys.meta_path
    ):
        return
    sys.meta_path.insert(0, _FirstTensorFlowImport())


def uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _FirstTensorFlowImport)]
