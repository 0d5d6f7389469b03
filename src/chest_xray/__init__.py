"""chest-xray: a Kedro pipeline that classifies chest X-rays as NORMAL or PNEUMONIA.

Importing the package sets what must be set before TensorFlow or MLflow start, for every
entry point (``kedro``, ``chest-xray predict``, a notebook, the served model) and the
processes they start; a value the user exported wins:

- ``TF_CPP_MIN_LOG_LEVEL=2``: TensorFlow's C++ INFO and WARNING lines stay out of the
  terminal (errors still show); ``quiet_start`` holds its first import to it too, which
  TensorFlow does not do by itself;
- ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false``: no "Downloading artifacts" progress bar
  for the files MLflow fetches on the project's behalf (a model's MLmodel file, a package
  loaded from a run or the registry), which a user never asked to watch.
"""

import os

from chest_xray.quiet_start import install as _hold_tensorflow_start

__version__ = "0.1.0"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
_hold_tensorflow_start()
