"""How a tracked run starts and ends: never left RUNNING, whatever stops it.

kedro-mlflow (registered through its entry point) opens the run in
``before_pipeline_run`` and ends it in ``after_pipeline_run`` /
``on_pipeline_error``. Plugins are registered after the project's hooks, so
pluggy calls kedro-mlflow's first: the run already exists in our
``before_pipeline_run`` and is already ended in our ``on_pipeline_error``.
``RunLifecycleHooks`` adds:

- a check of the store before kedro-mlflow connects: an http(s) server answers, a
  SQLite file can be read and written (``server_check``), else the run stops in
  seconds, naming it (a password in the URI hidden: ``uri_credentials``, which also
  hands the URI's ``user:password@`` to MLflow as its credential variables);
- ``host``/``pid`` tags, and KILLED for this host's runs whose process is gone;
- SIGTERM as an exception (``TerminatedBySignalError``), so Kedro's error hooks
  run and the run ends FAILED with its error and traceback; raised again every second
  until they run, in case some code dropped it;
- KILLED for a run interrupted before the pipeline ended (Ctrl-C, ``sys.exit``), said in
  a warning with how to resume (Click prints only "Aborted!");
- FAILED, with the reason in ``end_reason``, for a run whose pipeline finished but
  some of whose logging failed (``best_effort``): it must not look complete;
- the run ended in-process, so a notebook or test session starts clean.

The SIGTERM handler and the ``atexit`` handler exist only while a tracked run
is active: installed in ``before_pipeline_run``, removed when the run ends.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from types import FrameType

import mlflow
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from chest_xray.tracking.best_effort import best_effort, failures, forget_failures
from chest_xray.tracking.identity import MAX_TAG_LENGTH, TAG_END_REASON, TAG_ERROR, process_tags
from chest_xray.tracking.server_check import (
    check_sqlite_store,
    check_tracking_server,
    hand_credentials_to_mlflow,
    mlflow_conf,
    tracks_anything,
)
from chest_xray.tracking.stale_runs import close_stale_runs
from chest_xray.tracking.uri_credentials import redact

logger = logging.getLogger(__name__)

# What a stopped run can do next: BackupAndRestore kept its last finished epoch, and the
# checkpoint is resumed only by a run with the same data, parameters and code.
RESUME_ADVICE = (
    "If training had begun, the same command resumes it from its last finished epoch "
    "(training.checkpoint_dir)."
)


class TerminatedBySignalError(Exception):
    """SIGTERM as an ordinary exception, so Kedro's ``on_pipeline_error`` hooks run.

    Constructible from a message alone, as libraries expect of an exception: Keras
    re-raises one from inside a layer call as ``type(e)(message with context)``.
    """

    def __init__(self, message: str = "", signum: int = signal.SIGTERM) -> None:
        self.signum = signum
        super().__init__(message or f"Received {signal.Signals(signum).name}: the run was stopped")


# An exception raised by the handler does not always reach Kedro. It is dropped in Python
# code that C code calls back (an import made by TensorFlow's C++ side turns it into a
# SystemError that TensorFlow prints and drops: the run went on to its end, exit status 0),
# in logging handlers (``Handler.handleError``), in finalizers (``__del__``: "Exception
# ignored"), and by any library's ``except Exception``. So after the first SIGTERM the
# signal is sent again every second until the run's error hooks remove the handler: a
# delivery while the exception is being handled (an ``except``/``finally`` block on its
# way to Kedro) does nothing, one after it was dropped raises again. In an import or a
# logging handler, where it is known to be dropped, it waits for the next delivery.
_SWALLOWING_FRAMES = ("<frozen importlib", f"{os.sep}logging{os.sep}")
_RESEND_INTERVAL_S = 1.0


def _lands_where_it_is_swallowed(frame: FrameType | None) -> bool:
    while frame is not None:
        if any(part in frame.f_code.co_filename for part in _SWALLOWING_FRAMES):
            return True
        frame = frame.f_back
    return False


class _Resender:
    """Sends ``signum`` to this process every ``_RESEND_INTERVAL_S`` until stopped."""

    def __init__(self, signum: int) -> None:
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._resend, args=(signum,), name="sigterm-resender", daemon=True
        )
        self._thread.start()

    def _resend(self, signum: int) -> None:
        while not self._stopped.wait(_RESEND_INTERVAL_S):
            os.kill(os.getpid(), signum)

    def stop(self) -> None:
        """No signal is sent once this returns."""
        self._stopped.set()
        self._thread.join()


class _HandlerState:
    """The handler's state: one handler per process, so one state."""

    resender: _Resender | None = None
    restoring = False  # a delivery on its way when restore() began: nothing to do
    received: int | None = None  # the signal this run received, whatever it became


_state = _HandlerState()


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    if _state.restoring:
        return
    if _state.resender is None:
        _state.received = signum
        _state.resender = _Resender(signum)
    if _handling_termination():
        return  # the exception is on its way to Kedro's error hooks
    if _lands_where_it_is_swallowed(frame):
        return
    raise TerminatedBySignalError(signum=signum)


def as_termination(error: BaseException) -> BaseException:
    """``error``, or the termination it stands for when this run received SIGTERM and the
    exception the handler raised became another on its way (inside TensorFlow's C++ side
    it can come out as a ``SystemError`` that does not chain it)."""
    if _state.received is None or _holds_termination(error):
        return error
    name = signal.Signals(_state.received).name
    return TerminatedBySignalError(
        f"Received {name}: the run was stopped (it surfaced as {type(error).__name__}: {error})",
        signum=_state.received,
    )


def _holds_termination(error: BaseException | None) -> bool:
    """Whether ``error`` is a ``TerminatedBySignalError`` or was raised while one was
    being handled (its ``__context__``, kept by ``raise ... from``, even ``from None``)."""
    while error is not None:
        if isinstance(error, TerminatedBySignalError):
            return True
        error = error.__context__
    return False


def _handling_termination() -> bool:
    """Whether a ``TerminatedBySignalError`` is being handled here, or is the context of
    the exception being handled (one raised and caught inside the error hooks)."""
    return _holds_termination(sys.exc_info()[1])


def _stop_resending() -> None:
    if _state.resender is not None:
        _state.resender.stop()
        _state.resender = None


def raise_on_sigterm() -> Callable[[], None]:
    """Turn SIGTERM into ``TerminatedBySignalError`` until the returned undo is called.

    After the first SIGTERM the signal comes again every second until the undo, so an
    exception that some code drops is raised again. Only the main thread may set
    handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    _state.restoring = False
    _state.received = None
    previous = signal.signal(signal.SIGTERM, _raise_terminated)

    def restore() -> None:
        _state.restoring = True
        _stop_resending()  # first: a SIGTERM it sent after the default handler is back kills
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)

    return restore


class RunLifecycleHooks:
    """Start checks, process tags, stale runs; an end status for every way a run stops.

    Every hook is a no-op when no run is active (tracking disabled for the
    pipeline, e.g. ``--env=no_tracking``).
    """

    def __init__(self) -> None:
        self._run_id: str | None = None
        self._restore_sigterm: Callable[[], None] | None = None

    # ------------------------------------------------------------------ run start

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: KedroContext) -> None:
        """Before kedro-mlflow connects: close a run this process left open, check the server."""
        self._close_interrupted_run()
        conf = mlflow_conf(context)  # read once: the configuration loader parses files
        uri = hand_credentials_to_mlflow(context, conf)  # user:password@ -> MLflow's variables
        check_tracking_server(uri)
        if tracks_anything(conf):
            check_sqlite_store(uri)

    @hook_impl
    def before_pipeline_run(self) -> None:
        run = mlflow.active_run()
        if run is None:  # tracking disabled for this pipeline
            _forget_kedro_mlflow_run()
            return
        self._run_id = run_id = run.info.run_id
        forget_failures()
        self._install_handlers()
        client = MlflowClient()
        with best_effort("process tags"):
            for key, value in process_tags().items():
                client.set_tag(run_id, key, value)
        with best_effort("closing stale runs"):
            close_stale_runs(client, run.info.experiment_id, run_id)

    def _install_handlers(self) -> None:
        # Registered after MLflow's own atexit (at its import), so it runs first (LIFO):
        # MLflow's would end an interrupted run (KeyboardInterrupt, sys.exit) FINISHED.
        atexit.register(self._close_interrupted_run)
        self._restore_sigterm = raise_on_sigterm()

    def _remove_handlers(self) -> None:
        atexit.unregister(self._close_interrupted_run)
        if self._restore_sigterm is not None:
            self._restore_sigterm()
            self._restore_sigterm = None

    # -------------------------------------------------------------------- run end

    @hook_impl
    def after_pipeline_run(self) -> None:
        """The run ends FINISHED (kedro-mlflow), or FAILED if some of its logging was lost."""
        self._remove_handlers()
        run_id, self._run_id = self._run_id, None
        missing = failures()
        if run_id is not None and missing:
            reason = f"incomplete: {len(missing)} tracking call(s) failed: {'; '.join(missing)}"
            logger.error(
                "MLflow run %s is incomplete (%s): marked FAILED; the pipeline's own outputs "
                "are complete",
                run_id,
                reason,
            )
            with best_effort("marking the incomplete run FAILED"):
                client = MlflowClient()
                client.set_tag(run_id, TAG_END_REASON, reason[:MAX_TAG_LENGTH])
                # Ended here, whichever of kedro-mlflow's after_pipeline_run and this one
                # pluggy calls first: kedro-mlflow's end_run() would say FINISHED.
                _end_runs("FAILED")
                client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
        forget_failures()
        _end_runs("FINISHED")
        _forget_kedro_mlflow_run()

    @hook_impl
    def on_pipeline_error(self, error: Exception) -> None:
        """kedro-mlflow has ended the run FAILED: say why, as a tag and a traceback."""
        self._remove_handlers()
        run_id, self._run_id = self._run_id, None
        if run_id is not None:
            with best_effort("recording the error"):
                client = MlflowClient()
                reason = as_termination(error)
                message = redact(f"{type(reason).__name__}: {reason}")
                client.set_tag(run_id, TAG_ERROR, message[:MAX_TAG_LENGTH])
                trace = redact("".join(traceback.format_exception(error)))
                client.log_text(run_id, trace, "error/traceback.txt")
                if client.get_run(run_id).info.status == "RUNNING":
                    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
        _end_runs("FAILED")
        _forget_kedro_mlflow_run()

    def _close_interrupted_run(self) -> None:
        """A run whose pipeline neither finished nor failed (KeyboardInterrupt): KILLED."""
        self._remove_handlers()
        run_id, self._run_id = self._run_id, None
        if run_id is None:
            return
        # Said here: Click's "Aborted!" is all a Ctrl-C'd ``kedro run`` prints otherwise.
        logger.warning(
            "The run was interrupted before its pipeline ended: MLflow run %s is marked KILLED. %s",
            run_id,
            RESUME_ADVICE,
        )
        with best_effort("closing an interrupted run"):
            client = MlflowClient()
            client.set_tag(run_id, TAG_END_REASON, "interrupted before the pipeline ended")
            _end_runs("KILLED")
            client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))
        _forget_kedro_mlflow_run()


def _forget_kedro_mlflow_run() -> None:
    """Clear kedro-mlflow's memory of the last run.

    kedro-mlflow's hook is one instance per process (``mlflow_hook``), and it
    keeps the last run's id: its ``before_node_run`` reopens ``run_id`` whenever
    it is set, and only a tracked ``before_pipeline_run`` sets it again. So a
    later session in the same process (a notebook, the tests) with tracking
    disabled would log into the previous run, or fail to find it in another
    store. The ``kedro run`` CLI (one run per process) does not need this.
    """
    with contextlib.suppress(ImportError):
        from kedro_mlflow.framework.hooks.mlflow_hook import mlflow_hook

        mlflow_hook.run_id = None


def _end_runs(status: str) -> None:
    while (run := mlflow.active_run()) is not None:
        logger.debug("Ending MLflow run %s as %s", run.info.run_id, status)
        mlflow.end_run(status)
