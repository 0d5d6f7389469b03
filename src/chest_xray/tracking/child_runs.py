"""One nested MLflow run per Kedro namespace (a cross-validation fold) under the active run.

kedro-mlflow opens one run per ``kedro run``: the parent. What the catalog
declares with ``run: namespace`` (``fold_3.test_metrics``) goes to a child of it
named after the namespace (``fold_3``), made the first time that namespace logs
something and ended with the parent. Children are made through ``MlflowClient``,
not the fluent API, so folds that run on several threads never share an
"active run". They carry the ``host``/``pid`` tags of the process, so a child
left RUNNING by a killed process is closed by the next start
(``stale_runs``) like its parent.
"""

from __future__ import annotations

import threading

from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from chest_xray.tracking.identity import process_tags

TAG_NAMESPACE = "kedro.namespace"


def namespace_of(name: str) -> str | None:
    """The namespace of a dataset or node name (``fold_3.test_metrics`` -> ``fold_3``)."""
    return name.rpartition(".")[0] or None


class ChildRuns:
    """The child runs of one parent run, by namespace."""

    def __init__(self, parent_run_id: str) -> None:
        client = MlflowClient()
        self._parent = client.get_run(parent_run_id)
        self._runs: dict[str, str] = {}
        self._lock = threading.Lock()

    def run_id(self, namespace: str) -> str:
        """The child run of ``namespace``, made on first use."""
        with self._lock:
            if namespace not in self._runs:
                tags = {
                    MLFLOW_PARENT_RUN_ID: self._parent.info.run_id,
                    TAG_NAMESPACE: namespace,
                    **process_tags(),
                }
                run = MlflowClient().create_run(
                    self._parent.info.experiment_id, run_name=namespace, tags=tags
                )
                self._runs[namespace] = run.info.run_id
            return self._runs[namespace]

    def end(self, status: str = RunStatus.to_string(RunStatus.FINISHED)) -> None:
        """End every child with ``status`` (FINISHED, or FAILED when the pipeline failed)."""
        with self._lock:
            client = MlflowClient()
            for run_id in self._runs.values():
                client.set_terminated(run_id, status=status)
            self._runs.clear()
