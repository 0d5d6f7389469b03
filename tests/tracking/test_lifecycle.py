"""How tracked runs end (RunLifecycleHooks): failures, signals, kills, interrupted runs,
lost logging. The checks at start (server, SQLite store, no tracking): test_server_check.py."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from chest_xray.tools.demo_data import DemoDatasetFacts
from chest_xray.tracking import content, lifecycle
from chest_xray.tracking.best_effort import failures
from chest_xray.tracking.lifecycle import (
    RunLifecycleHooks,
    TerminatedBySignalError,
    raise_on_sigterm,
)
from chest_xray.tracking.stale_runs import process_is_gone
from tests.tracking.conftest import Tracked
from tests.tracking.support import (
    EXPERIMENT,
    artifact_paths,
    kedro_run,
    new_project,
    newest_run,
    read_artifact,
    sqlite_uri,
)

slow = pytest.mark.slow


# ------------------------------------------------------------ runs that do not finish


@slow
def test_a_failed_run_is_failed_with_its_error(
    kedro_project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_uri(kedro_project))
    missing = tmp_path / "no-such-download"
    with pytest.raises(Exception) as raised:
        kedro_run(
            kedro_project, params={"raw_root": str(missing)}, pipeline_names=["data_processing"]
        )
    client = MlflowClient(sqlite_uri(kedro_project))
    run = newest_run(client)
    assert run.info.status == "FAILED"
    assert run.data.tags["error"].startswith(type(raised.value).__name__)
    assert str(missing) in run.data.tags["error"]
    traceback = read_artifact(client, run.info.run_id, "error/traceback.txt", tmp_path)
    assert b"Traceback" in traceback
    assert mlflow.active_run() is None
    assert signal.getsignal(signal.SIGTERM) is not lifecycle._raise_terminated


@slow
def test_a_run_failing_after_many_nodes_is_closed_once(
    kedro_project: Path,
    monkeypatch: pytest.MonkeyPatch,
    demo_dataset: DemoDatasetFacts,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """kedro-mlflow reopens the run before every node; nested (its default) would push it
    on MLflow's stack once per node, and a failure close it, and say so, as many times."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_uri(kedro_project))
    params = {"raw_root": str(demo_dataset.root), "preprocessing.image_size": 32}
    with caplog.at_level(logging.INFO), pytest.raises(ValueError, match="too small"):
        kedro_run(kedro_project, params=params)  # train_model refuses, after data_processing
    assert caplog.text.count("was closed because of an error") == 1
    assert newest_run(MlflowClient(sqlite_uri(kedro_project))).info.status == "FAILED"
    assert mlflow.active_run() is None


def _sigterm_after_first_epoch(project: Path, env: dict[str, str], log: Path) -> int:
    """``kedro run --pipelines=training`` sent SIGTERM once a checkpoint exists; its pid."""
    checkpoints = project / "data/06_models/checkpoints"
    kedro = Path(sys.executable).with_name("kedro")
    command = [str(kedro), "run", "--env=demo", "--pipelines=training"]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*command, "--params=training.epochs=50"], cwd=project, env=env, stdout=out, stderr=out
        )
        try:
            deadline = time.monotonic() + 180
            while not (checkpoints.exists() and any(checkpoints.iterdir())):
                assert proc.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            # (a loaded 2-core machine: a step can take long)
            assert proc.wait(timeout=120) != 0, log.read_text()[-6000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    return proc.pid


def _a_run_killed_by_sigkill(env: dict[str, str]) -> str:
    """The id of a run whose process was SIGKILLed right after starting it (left RUNNING)."""
    script = (
        "import os, signal, mlflow\n"
        "from chest_xray.tracking.identity import process_tags\n"
        f"mlflow.set_experiment({EXPERIMENT!r})\n"
        "run = mlflow.start_run(tags=process_tags())\n"
        "print(run.info.run_id, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    return killed.stdout.strip().splitlines()[-1]


@slow
def test_sigterm_fails_the_run_and_a_killed_run_is_closed_at_next_start(
    tracked: Tracked, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = new_project(tmp_path, data_from=tracked.project)
    monkeypatch.chdir(project)
    uri = sqlite_uri(project)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = MlflowClient(uri)
    env = {**os.environ, "COLUMNS": "200", "TF_CPP_MIN_LOG_LEVEL": "2"}

    # 1. SIGTERM during training: a real `kedro run`, stopped after its first epoch.
    log = tmp_path / "kedro.log"
    pid = _sigterm_after_first_epoch(project, env, log)
    run = newest_run(client)
    assert run.info.status == "FAILED", log.read_text()[-3000:]
    # (Keras adds context to an exception raised inside a layer call: the type stays.)
    assert run.data.tags["error"].startswith("TerminatedBySignalError: ")
    assert "Received SIGTERM" in run.data.tags["error"]
    assert run.data.tags["pid"] == str(pid)
    assert "error/traceback.txt" in artifact_paths(client, run.info.run_id)
    said = log.read_text()  # the user reads that the run was stopped, not a traceback
    assert "The run was stopped by SIGTERM before its pipeline ended" in said, said[-3000:]
    assert "Traceback" not in said and "╭" not in said

    # 2. SIGKILL leaves no chance to close a run: it stays RUNNING...
    killed_id = _a_run_killed_by_sigkill(env)
    assert client.get_run(killed_id).info.status == "RUNNING"
    experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    elsewhere = client.create_run(experiment_id, tags={"host": "another-host", "pid": "1"})

    # ...until the next tracked run on this host marks it KILLED (a cheap one: a plot).
    kedro_run(project, pipeline_names=["training"], node_names=["plot_training_curves"])
    closed = client.get_run(killed_id)
    assert closed.info.status == "KILLED"
    assert "ended without closing the run" in closed.data.tags["end_reason"]
    assert client.get_run(elsewhere.info.run_id).info.status == "RUNNING"  # not ours to judge
    assert newest_run(client).info.status == "FINISHED"


@slow
def test_a_run_whose_logging_failed_mid_run_ends_failed_saying_what_is_missing(
    kedro_project: Path,
    monkeypatch: pytest.MonkeyPatch,
    demo_dataset: DemoDatasetFacts,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Before, a store that failed mid-run left a FINISHED run (with zero metrics)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_uri(kedro_project))

    def store_gone(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk I/O error")

    monkeypatch.setattr(content.mlflow, "log_input", store_gone)
    kedro_run(
        kedro_project,
        params={"raw_root": str(demo_dataset.root), "preprocessing.workers": 1},
        pipeline_names=["data_processing"],
    )
    assert (kedro_project / "data/03_primary/split_manifest.csv").exists()  # results kept
    run = newest_run(MlflowClient(sqlite_uri(kedro_project)))
    assert run.info.status == "FAILED"
    assert run.data.tags["end_reason"].startswith("incomplete: 1 tracking call(s) failed")
    assert "lineage of split_manifest" in run.data.tags["end_reason"]
    assert "is incomplete" in caplog.text
    assert failures() == []  # the next run starts clean


# -------------------------------------------------------------------- the pieces


def test_sigterm_becomes_an_exception_until_restored() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    restore = raise_on_sigterm()
    try:
        assert signal.getsignal(signal.SIGTERM) is lifecycle._raise_terminated
        with pytest.raises(TerminatedBySignalError, match="SIGTERM"):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs at the next bytecode
    finally:
        restore()
    assert signal.getsignal(signal.SIGTERM) == previous


def test_a_dropped_sigterm_exception_is_raised_again_until_the_handler_is_restored() -> None:
    """Where the exception is dropped (TensorFlow's C++ side importing a module, a logging
    handler, a finalizer, a library's ``except Exception``) the run would go on to its end:
    SIGTERM comes again every second, and raises again unless the first is being handled."""
    previous = signal.getsignal(signal.SIGTERM)
    restore = raise_on_sigterm()
    try:
        # 1. In an import or a logging handler the exception would be dropped: not raised.
        for swallowing in ("<frozen importlib._bootstrap>", logging.__file__):
            code = compile("frame = sys._getframe()", swallowing, "exec")
            scope: dict[str, object] = {"sys": sys}
            exec(code, scope)
            lifecycle._raise_terminated(signal.SIGTERM, scope["frame"])  # type: ignore[arg-type]
        with pytest.raises(TerminatedBySignalError):  # the next delivery, anywhere else
            time.sleep(5)
        # 2. Dropped by an ``except Exception``: raised again.
        with contextlib.suppress(Exception):
            time.sleep(5)
        with pytest.raises(TerminatedBySignalError):
            time.sleep(5)
        # 3. While the exception is being handled, on its way to Kedro's error hooks: quiet.
        try:
            time.sleep(5)
        except TerminatedBySignalError:
            time.sleep(1.5)  # a delivery lands here
            try:  # and here: an exception raised and caught while handling it
                raise OSError("a store call inside an error hook")
            except OSError:
                time.sleep(1.5)
    finally:
        restore()
    assert signal.getsignal(signal.SIGTERM) == previous
    time.sleep(1.5)  # no delivery after the restore (it would kill this process)
    assert lifecycle._state.resender is None


def test_a_sigterm_that_surfaced_as_another_error_is_still_named_the_termination() -> None:
    """Raised inside Python code that TensorFlow's C++ side called, the handler's exception
    can come out as a ``SystemError`` that does not chain it: the run was still stopped."""
    other = SystemError("Objects/listobject.c:338: bad argument to internal function")
    raise_on_sigterm()()  # a run starts with nothing received (earlier tests sent SIGTERM)
    assert lifecycle.as_termination(other) is other  # no SIGTERM: the error as it is
    restore = raise_on_sigterm()
    try:
        with pytest.raises(TerminatedBySignalError):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    finally:
        restore()
    reason = lifecycle.as_termination(other)
    assert isinstance(reason, TerminatedBySignalError) and reason.signum == signal.SIGTERM
    assert str(reason).startswith("Received SIGTERM: the run was stopped (it surfaced as ")
    assert "SystemError: Objects/listobject.c:338" in str(reason)
    chained = RuntimeError("context added")
    chained.__context__ = TerminatedBySignalError()
    assert lifecycle.as_termination(chained) is chained  # the termination is in its chain
    raise_on_sigterm()()  # a new run starts with nothing received
    assert lifecycle.as_termination(other) is other


def test_the_sigterm_exception_survives_keras_adding_context() -> None:
    """Keras re-raises an exception from a layer call as ``type(e)(message)``."""
    error = TerminatedBySignalError(signum=signal.SIGTERM)
    assert str(error) == "Received SIGTERM: the run was stopped"
    again = type(error)(f"Exception encountered when calling Dense.call().\n\n{error}")
    assert isinstance(again, TerminatedBySignalError) and "Received SIGTERM" in str(again)


def test_a_process_is_gone_when_dead_or_younger_than_the_run() -> None:
    now_ms = int(time.time() * 1000)
    assert not process_is_gone(os.getpid(), now_ms)
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert process_is_gone(int(child.stdout), now_ms)
    if Path("/proc/self/stat").exists():  # pid reuse: this process is younger than the run
        assert process_is_gone(os.getpid(), run_started_ms=0)


class _Atexit:
    """Stands in for the ``atexit`` module: what is registered now."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[], None]] = []

    def register(self, callback: Callable[[], None]) -> None:
        self.callbacks.append(callback)

    def unregister(self, callback: Callable[[], None]) -> None:
        self.callbacks = [c for c in self.callbacks if c != callback]


@pytest.fixture
def tracking_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh sqlite store as MLflow's tracking URI, with the experiment; the run ended after."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    MlflowClient(uri).create_experiment(EXPERIMENT)
    mlflow.set_experiment(EXPERIMENT)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()


@pytest.mark.parametrize("end", ["finished", "failed"])
def test_exit_and_sigterm_handlers_exist_only_while_a_run_is_active(
    end: str, tracking_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    exits = _Atexit()
    monkeypatch.setattr(lifecycle, "atexit", exits)
    previous = signal.getsignal(signal.SIGTERM)
    hooks = RunLifecycleHooks()
    assert exits.callbacks == [] and signal.getsignal(signal.SIGTERM) == previous

    hooks.before_pipeline_run()  # tracking disabled: no run
    assert exits.callbacks == [] and signal.getsignal(signal.SIGTERM) == previous

    run = mlflow.start_run()  # as kedro-mlflow does before our before_pipeline_run
    hooks.before_pipeline_run()
    assert exits.callbacks == [hooks._close_interrupted_run]
    assert signal.getsignal(signal.SIGTERM) is lifecycle._raise_terminated

    if end == "finished":
        hooks.after_pipeline_run()
    else:
        hooks.on_pipeline_error(error=RuntimeError("boom"))
    assert exits.callbacks == [] and signal.getsignal(signal.SIGTERM) == previous
    assert mlflow.active_run() is None
    assert MlflowClient(tracking_store).get_run(run.info.run_id).info.status == end.upper()


def test_an_interrupted_run_is_closed_as_killed(
    tracking_store: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """KeyboardInterrupt skips Kedro's pipeline hooks, and MLflow's atexit would end the
    run FINISHED: the hooks' own atexit (and the next session) end it KILLED."""
    exits = _Atexit()
    monkeypatch.setattr(lifecycle, "atexit", exits)
    previous = signal.getsignal(signal.SIGTERM)
    hooks = RunLifecycleHooks()
    run = mlflow.start_run(run_name="training")  # as kedro-mlflow
    hooks.before_pipeline_run()
    # ... interrupted: neither after_pipeline_run nor on_pipeline_error is called.
    (at_exit,) = exits.callbacks
    at_exit()
    assert mlflow.active_run() is None
    assert exits.callbacks == [] and signal.getsignal(signal.SIGTERM) == previous
    closed = MlflowClient(tracking_store).get_run(run.info.run_id)
    assert closed.info.status == "KILLED"
    assert closed.data.tags["end_reason"] == "interrupted before the pipeline ended"
    assert closed.data.tags["pid"] == str(os.getpid())
    # Said, with how to resume: Click prints only "Aborted!" for a Ctrl-C'd kedro run.
    assert f"MLflow run {run.info.run_id} is marked KILLED" in caplog.text
    assert lifecycle.RESUME_ADVICE in caplog.text
