"""MLflow tracking of ``kedro run``, on top of kedro-mlflow (which opens and ends the run).

What is tracked is declared in ``conf/base/catalog.yml``: files wrapped in
kedro-mlflow's ``MlflowArtifactDataset``, the rest under ``metadata.mlflow``.

- ``declarations``: reads and validates an entry's ``metadata.mlflow``; tells
  tracked datasets from the others. No dataset is named anywhere in this package.
- ``content``: ``RunContentHooks``, what a run holds: its name and identity tags,
  typed parameters field by field, the declared metrics, model and data lineage.
- ``lifecycle``: ``RunLifecycleHooks``, how a run starts and ends: server check,
  process tags, stale runs, SIGTERM, interrupted runs, ending the run in-process.
- ``identity``: run name and tag names; git, Keras device and process tags.
- ``model_logging``: the Keras model in MLflow's Keras flavour.
- ``server_check``: fail fast on an unreachable tracking server.
- ``uri_credentials``: ``user:password@`` in a tracking URI, handed to MLflow as its
  ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``, and redacted wherever a URI is printed.
- ``stale_runs``: runs left RUNNING by a process that is gone become KILLED.
- ``best_effort``: a failure to log is a warning, never a lost result.
- ``run_comparison``: the ``chest-xray-runs`` command (runs side by side).
"""
