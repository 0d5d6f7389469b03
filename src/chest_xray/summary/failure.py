"""How a run that stopped on bad input says so: its message, not a traceback panel.

Kedro lets an exception end ``kedro run``, and Python's hook (rich's, in Kedro) prints
it with every frame of Kedro, pluggy and the project around one sentence. When that
sentence is the project's own message about the user's input (a ``ValueError`` or
``OSError`` raised by this package's code: an unknown ``--params`` key, a dataset
without test images, a missing file; or a parameter that fails its validation, which
Kedro reports for the typed parameters of the nodes), a dataset whose file is not
there (a wrong ``raw_root``), or a file in conf/ that Kedro's configuration loader
cannot read (a YAML syntax error, with its file and line), the
frames add nothing a user can act on. A run its user stopped (SIGTERM, which the
tracking hooks turn into ``TerminatedBySignalError``; Ctrl-C) is no bug either: it says so
and how to go on. Anything else is a bug and keeps its traceback, as does every error with
``CHEST_XRAY_TRACEBACK=1``. The exit status stays 1.
"""

from __future__ import annotations

import linecache
import os
import signal
import sys
from pathlib import Path
from types import TracebackType
from typing import TextIO

import kedro.config
from kedro.io import DatasetError
from kedro.validation import ParameterValidationError
from pydantic import ValidationError

from chest_xray.tracking.lifecycle import RESUME_ADVICE, TerminatedBySignalError, as_termination

PACKAGE_DIR = Path(__file__).resolve().parents[1]
# Kedro's configuration loader: what it raises is about the files in conf/ (a YAML syntax
# error with its file and line, duplicate keys, a missing environment, a bad interpolation)
KEDRO_CONFIG_DIR = Path(kedro.config.__file__).resolve().parent
TRACEBACK_VARIABLE = "CHEST_XRAY_TRACEBACK"
_MARK = "_chest_xray_input_errors"


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and what it wraps, outermost first (Kedro's DatasetError wraps a dataset's
    error, and the catalog wraps that again)."""
    chain = [error]
    while chain[-1].__cause__ is not None and len(chain) < 8:
        chain.append(chain[-1].__cause__)
    return chain


def missing_file(error: BaseException) -> FileNotFoundError | None:
    """The missing file behind a dataset that could not load: a path in the configuration
    (``raw_root``) or a run started ``--from-nodes`` whose inputs were never made."""
    if not isinstance(error, DatasetError):
        return None
    found = [cause for cause in _chain(error) if isinstance(cause, FileNotFoundError)]
    return found[0] if found else None


def is_input_error(error: BaseException) -> bool:
    """Whether ``error`` (or what it wraps) is a message this project wrote about its
    input, or a dataset whose file is not there."""
    if missing_file(error) is not None:
        return True
    for candidate in _chain(error):
        if isinstance(candidate, ValidationError | ParameterValidationError):
            return True
        if isinstance(candidate, ValueError | OSError) and _raised_in(candidate, PACKAGE_DIR):
            return True
        if not isinstance(candidate, KeyError) and _raised_in(candidate, KEDRO_CONFIG_DIR):
            return True  # a KeyError there is a key the code asked for: a bug
    return False


def stopped_by(error: BaseException) -> str | None:
    """What stopped the run when its user did ("SIGTERM", "Ctrl-C"); None otherwise.

    Keras re-raises an exception from inside a layer call as a new one of the same type,
    so the type, not the instance, is what survives."""
    for candidate in _chain(as_termination(error)):
        if isinstance(candidate, TerminatedBySignalError):
            return signal.Signals(candidate.signum).name
        if isinstance(candidate, KeyboardInterrupt):
            return "Ctrl-C"
    return None


def message(error: BaseException) -> str:
    """What the user reads: the error's own words; for a missing file, the dataset and
    the path (Kedro's message also prints the dataset's every argument)."""
    missing = missing_file(error)
    if missing is None:
        return str(error)
    dataset = str(error).split(":", 1)[0]  # the catalog's "<name>: <dataset's message>"
    where = missing.filename or missing
    return f"{dataset}: no such file: {where}"


def _raised_in(error: BaseException, folder: Path) -> bool:
    """True when ``error`` left a ``raise`` statement in ``folder`` (this package: a
    message the project wrote). Not a library's error passing through that code, nor a
    builtin's (``int("x")`` in a line of the project's is a bug, and keeps its traceback)."""
    frame = error.__traceback__
    if frame is None:
        return False
    while frame.tb_next is not None:
        frame = frame.tb_next
    filename = frame.tb_frame.f_code.co_filename
    if not Path(filename).resolve().is_relative_to(folder):
        return False
    return linecache.getline(filename, frame.tb_lineno).lstrip().startswith("raise")


def install(err: TextIO | None = None) -> None:
    """Wrap ``sys.excepthook`` (once) so input errors print as one message."""
    previous = sys.excepthook
    if getattr(previous, _MARK, False):
        return

    def hook(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
        stopper = stopped_by(error)
        if os.environ.get(TRACEBACK_VARIABLE) or not (stopper or is_input_error(error)):
            previous(kind, error, trace)
            return
        said = (
            f"The run was stopped by {stopper} before its pipeline ended. {RESUME_ADVICE}"
            if stopper
            else f"The run stopped: {message(error)}"
        )
        out = err or sys.stderr
        out.write(f"\n{said}\n({kind.__name__}; {TRACEBACK_VARIABLE}=1 shows the traceback)\n")

    setattr(hook, _MARK, True)
    sys.excepthook = hook
