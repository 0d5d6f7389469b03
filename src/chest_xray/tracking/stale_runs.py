"""Runs left RUNNING by a process that is gone (SIGKILL, OOM killer, power loss): KILLED.

A process killed that way has no chance to close its run, so the next tracked
start on the same host does it, telling a dead owner from a live one by the
run's ``host``/``pid`` tags and, against pid reuse, the process start time in
``/proc``.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from chest_xray.tracking.identity import TAG_END_REASON, TAG_HOST, TAG_PID

logger = logging.getLogger(__name__)


def _process_started_at(pid: int) -> float | None:
    """Start time (epoch seconds) of a live process from /proc; None if unknown, -1 a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, StopIteration, ValueError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return -1.0  # a zombie has finished
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def process_is_gone(pid: int, run_started_ms: int) -> bool:
    """True when no process ``pid`` can own a run started at ``run_started_ms``.

    A pid that exists but was started after the run (pid reuse) is not the owner.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # exists, owned by someone else
    started = _process_started_at(pid)
    if started is None:
        return False
    return started < 0 or started > run_started_ms / 1000 + 2.0


def close_stale_runs(client: MlflowClient, experiment_id: str, current_run_id: str) -> list[str]:
    """Mark this host's RUNNING runs whose process is gone as KILLED; return their ids.

    Runs of other hosts, or without host/pid tags, are left alone.
    """
    host = socket.gethostname()
    closed = []
    for run in client.search_runs(
        [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=500
    ):
        tags = run.data.tags
        if run.info.run_id == current_run_id or tags.get(TAG_HOST) != host:
            continue
        try:
            pid = int(tags.get(TAG_PID, ""))
        except ValueError:
            continue
        if not process_is_gone(pid, run.info.start_time):
            continue
        client.set_tag(
            run.info.run_id,
            TAG_END_REASON,
            f"process {pid} on {host} ended without closing the run "
            f"(found by run {current_run_id})",
        )
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
        logger.warning("Marked MLflow run %s (pid %d, gone) as KILLED", run.info.run_id, pid)
        closed.append(run.info.run_id)
    return closed
