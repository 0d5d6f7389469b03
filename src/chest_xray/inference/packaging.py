"""The servable package: network + inference settings as one MLflow pyfunc model.

The same package is written to ``data/06_models/servable_model/<version>/`` by
the catalog (``ServableModelDataset``) and logged to the MLflow run (named
``model``, registered as ``chest-xray``): a local folder and ``runs:/<id>/model``
or ``models:/chest-xray@champion`` load the same way (``load_classifier``).

The package carries the project's code (``code_paths``), so ``mlflow models
serve`` runs the preprocessing the model was trained with even where the
installed ``chest_xray`` is older or newer; its Python dependencies are pinned
to the versions of the environment that trained it. The model itself is logged
from code (``served_model.py``, MLflow's models-from-code), not pickled.
"""

from __future__ import annotations

import contextlib
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import chest_xray
from chest_xray.inference.classifier import Classifier
from chest_xray.inference.ood import OodGuard, save_guard
from chest_xray.inference.pyfunc_model import KERAS_ARTIFACT, OOD_ARTIFACT, OUTPUT_COLUMNS
from chest_xray.inference.settings import InferenceSettings, InferenceSettingsError
from chest_xray.inference.trust import RUN_TAG, record, verified_copy

if TYPE_CHECKING:
    import keras
    from mlflow.models.model import ModelInfo

# What the package's code imports (besides the Keras backend).
_REQUIREMENTS = (
    "keras",
    "numpy",
    "pandas",
    "pillow",
    "pydicom",
    "pydantic",
    "mlflow",
    "scikit-image",
)
# The file MLflow runs to make the model (``mlflow.models.set_model``), copied into the
# package; named, not imported: importing it would run its set_model here.
_MODEL_CODE = str(Path(__file__).with_name("served_model.py"))
_BACKENDS = {"tensorflow": ("tensorflow", "tensorflow-cpu"), "jax": ("jax",), "torch": ("torch",)}


@dataclass(frozen=True)
class ServableModel:
    """What the evaluation pipeline packages: the network and how to use it."""

    model: keras.Model
    settings: InferenceSettings
    ood_guard: OodGuard | None = None  # the out-of-distribution guard (inference/ood.py)


def save_servable_model(servable: ServableModel, path: str | Path) -> None:
    """Write the package to ``path`` (which must not exist or be empty)."""
    import mlflow.pyfunc

    with _packaging_kwargs(servable) as kwargs, _no_input_example_warning():
        mlflow.pyfunc.save_model(path=str(path), **kwargs)
    record(path, source=f"saved to {path}")


def log_servable_model(servable: ServableModel, name: str) -> ModelInfo:
    """Log the package to the active MLflow run as ``name`` (``runs:/<run id>/<name>``)."""
    import mlflow.pyfunc

    with _packaging_kwargs(servable) as kwargs, _no_input_example_warning():
        info = mlflow.pyfunc.log_model(name=name, **kwargs)
    _record_logged(info)
    return info


def _record_logged(info: ModelInfo) -> None:
    """The logged package's digest, in the local record and as its run's tag (inference/trust.py):
    what the tracking store holds is then loadable from any machine that reads it."""
    import mlflow
    import mlflow.artifacts

    with tempfile.TemporaryDirectory(prefix="chest-xray-logged-") as scratch:
        logged = mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=scratch)
        digest = record(logged, source=info.model_uri)
    if info.run_id:
        mlflow.MlflowClient().set_tag(info.run_id, RUN_TAG, digest)


def newest_package(folder: str | Path) -> Path | None:
    """The newest complete package (with its ``MLmodel``) of a versioned folder such as
    ``data/06_models/servable_model``, or None; Kedro's version names sort by time."""
    folder = Path(folder)
    found = sorted(folder.glob(f"*/{folder.name}/MLmodel"))
    return found[-1].parent if found else None


def load_classifier(uri: str, *, trust: bool = False) -> Classifier:
    """A package from a local folder or any MLflow model URI, ready to predict.

    Only a package this machine's pipelines made or its tracking store records is loaded
    (``UntrustedPackageError`` otherwise; ``trust`` loads it anyway), and from a checked
    private copy (inference/trust.py): a package is code. A model that is not such a
    package (e.g. one logged by an older version in the Keras flavour) is refused with
    the reason, never guessed at.
    """
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    pyfunc = mlflow.pyfunc.load_model(str(verified_copy(uri, trust=trust)))
    try:
        python_model = pyfunc.unwrap_python_model()
    except MlflowException as error:
        raise InferenceSettingsError(
            f"{uri} is not a chest-xray servable model (no preprocessing settings or "
            "threshold recorded with it); use a model logged by the evaluation pipeline"
        ) from error
    classifier = getattr(python_model, "classifier", None)
    if not isinstance(classifier, Classifier):
        raise InferenceSettingsError(f"{uri} is a pyfunc model, but not a chest-xray one")
    classifier.source = uri
    return classifier


@contextlib.contextmanager
def _packaging_kwargs(servable: ServableModel) -> Iterator[dict[str, Any]]:
    """``save_model`` / ``log_model`` arguments; the Keras file lives until they return."""
    from chest_xray.modeling.saving import save_network

    with tempfile.TemporaryDirectory(prefix="chest-xray-package-") as scratch:
        weights = Path(scratch, "model.keras")
        save_network(servable.model, weights, include_optimizer=False)
        config = servable.settings.to_config()
        ood_artifacts, ood_metadata = _ood_guard_files(servable.ood_guard, Path(scratch))
        yield {
            "python_model": _MODEL_CODE,  # models-from-code: the file, not a pickle
            "artifacts": {KERAS_ARTIFACT: str(weights), **ood_artifacts},
            "model_config": config,
            "metadata": {"chest_xray": config, **ood_metadata},
            "signature": _signature(servable.settings.classes, servable.settings.task),
            "code_paths": [str(Path(chest_xray.__file__).parent)],
            "pip_requirements": pip_requirements(),
        }


def _ood_guard_files(
    guard: OodGuard | None, scratch: Path
) -> tuple[dict[str, str], dict[str, Any]]:
    """The guard's ``.npz`` as an artifact (it travels inside the package and the MLflow
    model), and its threshold in the model's metadata; nothing without a guard."""
    if guard is None:
        return {}, {}
    path = scratch / "ood_guard.npz"
    save_guard(guard, path)
    summary = {
        "threshold": guard.threshold,
        "quantile": guard.quantile,
        "n_fit": guard.n_fit,
        "threshold_source": guard.threshold_source,
    }
    return {OOD_ARTIFACT: str(path)}, {"ood_guard": summary}


@contextlib.contextmanager
def _no_input_example_warning() -> Iterator[None]:
    """MLflow asks for an input example; ours would be a base64 X-ray in every package."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*An input example was not provided")
        yield


def pip_requirements() -> list[str]:
    """The installed versions of what the package imports, and of the Keras backend."""
    import keras

    requirements = []
    for name in _REQUIREMENTS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            requirements.append(f"{name}=={metadata.version(name)}")
    for name in _BACKENDS.get(keras.backend.backend(), ()):
        with contextlib.suppress(metadata.PackageNotFoundError):
            requirements.append(f"{name}=={metadata.version(name)}")
            break
    return requirements


def _signature(classes: tuple[str, ...] = (), task: str = "binary") -> Any:
    """Columns in (image: base64 | path), columns out (probability, label, ood_*, threshold; a
    multiclass model: also ``probability_<CLASS>`` per class, and no threshold)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    inputs = Schema(
        [ColSpec("string", "image", required=False), ColSpec("string", "path", required=False)]
    )
    types = {
        "probability": "double",
        "label": "string",  # empty for an image the OOD guard flags
        "ood_score": "double",
        "ood_flag": "boolean",
        "ood_reason": "string",
        "threshold": "double",
    }
    multiclass = task == "multiclass"
    columns: list[ColSpec | TensorSpec] = [
        ColSpec(types[name], name, required=not (multiclass and name == "threshold"))
        for name in OUTPUT_COLUMNS
    ]
    if multiclass:
        columns += [ColSpec("double", f"probability_{name}") for name in classes]
    return ModelSignature(inputs=inputs, outputs=Schema(columns))
