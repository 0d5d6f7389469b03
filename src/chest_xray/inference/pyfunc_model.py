"""The servable model: an MLflow ``PythonModel`` that takes image files, not pixels.

Input, a DataFrame (JSON ``dataframe_split`` / ``dataframe_records`` over HTTP)
with one image per row, in one of two columns:

- ``image``: the encoded file (JPEG, PNG, DICOM, ...) as a base64 string;
- ``path``: a file path, accepted only when the server was started with
  ``CHEST_XRAY_SERVE_ROOT`` set, and then only for regular files inside that
  folder once every symbolic link is resolved (no ``../`` or link escapes).

Limits, from the server's environment: ``CHEST_XRAY_MAX_IMAGES_PER_REQUEST``
(default 64), ``CHEST_XRAY_MAX_IMAGE_BYTES`` (lowers the package's own
per-image limit, 64 MiB by default), ``CHEST_XRAY_MAX_IMAGE_PIXELS`` (default
50 million, read from each image's header before it is decoded) and
``CHEST_XRAY_DECODE_MEMORY_MB`` (how much the images decoding at once may take,
default 1024: ``data.decode_budget``).

Output, one row per image: ``probability`` (of the positive class), ``label`` at
the model's threshold, the out-of-distribution guard's ``ood_score``, ``ood_flag`` and
``ood_reason`` (a flagged image's label is empty; ``CHEST_XRAY_OOD=label`` in the
server's environment labels it anyway, ``off`` skips the guard), and that ``threshold``.
A multiclass model answers
``probability`` (of the predicted class), ``label`` (the most probable class),
``threshold`` (null) and ``probability_<CLASS>`` for each class. The preprocessing and threshold
come from the package (``settings``), so the caller never repeats them.

A request that cannot be answered whole (no rows, too many rows, bad base64, an
image that does not decode or is over the size or pixel limit, a path outside
the root) raises ``MlflowException`` with a client error code: MLflow's scoring
server answers 4xx with the message (naming the row and the reason) and keeps
serving. Images over Pillow's pixel limit are refused from their header, never
decoded (``data.imaging.decode``).

Why not kedro-mlflow's ``pipeline_ml_factory``: its ``KedroPipelineModel`` runs
a Kedro pipeline with a one-output inference pipeline whose input is a catalog
dataset, and is logged only at the end of a run of the *training* pipeline
object. Here the decision threshold is chosen by the evaluation pipeline on the
validation split, the Kedro ``inference`` pipeline reads a folder and writes
three outputs (predictions, skipped files, Grad-CAM overlays), and a served
model must answer in milliseconds per image, not start a Kedro runner and
catalog per request. So the served model and the Kedro pipeline share the code
below them (``Classifier``: ``data.imaging`` preprocessing + the network)
instead of one wrapping the other.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INTERNAL_ERROR,
    INVALID_PARAMETER_VALUE,
    PERMISSION_DENIED,
)
from mlflow.pyfunc import PythonModel

from chest_xray.data.imaging import DEFAULT_MAX_PIXELS, UnreadableImageError
from chest_xray.inference.classifier import OOD_COLUMNS, Classifier, ImageTooLargeError, OodPolicy
from chest_xray.inference.ood import OodGuard, load_guard
from chest_xray.inference.settings import InferenceSettings, InferenceSettingsError

logger = logging.getLogger(__name__)

KERAS_ARTIFACT = "keras_model"
OOD_ARTIFACT = "ood_guard"  # the guard's .npz; absent from packages made before it
OOD_ENV = "CHEST_XRAY_OOD"  # flag (default) | label | off: what the server does with OOD images
SERVE_ROOT_ENV = "CHEST_XRAY_SERVE_ROOT"  # the folder ``path`` inputs must stay inside
MAX_ROWS_ENV = "CHEST_XRAY_MAX_IMAGES_PER_REQUEST"
MAX_BYTES_ENV = "CHEST_XRAY_MAX_IMAGE_BYTES"  # per image, at most the package's own limit
MAX_PIXELS_ENV = "CHEST_XRAY_MAX_IMAGE_PIXELS"  # per image, from its header
DEFAULT_MAX_ROWS = 64
OUTPUT_COLUMNS = ["probability", "label", *OOD_COLUMNS, "threshold"]


class RequestError(MlflowException):
    """A request this model refuses: the scoring server answers 400 (403 for paths)."""

    def __init__(self, message: str, *, forbidden: bool = False) -> None:
        super().__init__(
            message, error_code=PERMISSION_DENIED if forbidden else INVALID_PARAMETER_VALUE
        )


class ChestXrayModel(PythonModel):
    """Raw image files in, P(positive) and label out; see the module docstring."""

    classifier: Classifier

    def load_context(self, context: Any) -> None:
        from chest_xray.modeling.saving import load_network

        settings = InferenceSettings.from_config(context.model_config, "this MLflow model")
        if limit := os.environ.get(MAX_BYTES_ENV):  # a server may only lower the package's limit
            lowered = min(int(limit), settings.max_image_bytes)
            settings = settings.model_copy(update={"max_image_bytes": lowered})
        max_pixels = _positive_env(MAX_PIXELS_ENV, DEFAULT_MAX_PIXELS)
        # model.keras; a package written by an earlier version holds model.h5: both load.
        model = load_network(context.artifacts[KERAS_ARTIFACT], compile=False)
        guard = packaged_guard(context.artifacts, "this MLflow model")
        policy = ood_policy(os.environ.get(OOD_ENV, "flag"), OOD_ENV)
        self.classifier = Classifier(
            model, settings, "mlflow", guard, policy, max_pixels=max_pixels
        )

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        try:
            return self._predict(model_input)
        except MlflowException:
            raise  # a refusal with its reason: the scoring server answers 4xx with it
        except Exception as error:
            # A fault of this server, not of the request: the traceback goes to the
            # server's log, the client gets one line without paths or code.
            logger.exception("The model failed on a request")
            raise MlflowException(
                f"the model failed on this request ({type(error).__name__}); "
                "the server's log has the details",
                error_code=INTERNAL_ERROR,
            ) from None

    def _predict(self, model_input: Any) -> pd.DataFrame:
        frame = _as_frame(model_input)
        pixels = np.stack([self._pixels(index, row) for index, row in enumerate(_rows(frame))])
        prob = self.classifier.probabilities(pixels)
        table = pd.DataFrame(self.classifier.table(prob, pixels))
        # Not scored (CHEST_XRAY_OOD=off): null in the JSON answer, not the invalid NaN.
        scored = table["ood_score"].notna()
        if not scored.all():
            table["ood_score"] = table["ood_score"].astype(object).where(scored, None)
        table["threshold"] = self.classifier.settings.threshold
        return table[[*OUTPUT_COLUMNS, *self.classifier.class_columns()]]

    def _pixels(self, index: int, row: dict[str, Any]) -> np.ndarray:
        image, path = _present(row.get("image")), _present(row.get("path"))
        if (image is None) == (path is None):
            raise RequestError(f"row {index}: give exactly one of 'image' (base64) and 'path'")
        name = f"row {index}"
        limit = self.classifier.settings.max_image_bytes
        if image is not None:
            data = _decode_base64(image, name, limit)
        else:
            data = _read_served_file(path, name, limit)
            name = f"{name} ({path})"
        try:
            return self.classifier.pixels(data, name)
        except ImageTooLargeError as error:
            raise RequestError(str(error)) from None
        except UnreadableImageError as error:
            raise RequestError(f"{error.name}: not a usable image: {error.reason}") from None


def _read_served_file(path: Any, name: str, limit: int) -> bytes:
    """The bytes of a ``path`` row's file, inside the served root; refusals name the row."""
    if not isinstance(path, str) or "\x00" in path:
        raise RequestError(f"{name}: 'path' must be a file path (text without NUL bytes)")
    try:
        file = confined_path(path, os.environ.get(SERVE_ROOT_ENV), name)
        if file.stat().st_size > limit:
            raise RequestError(f"{name}: file {path} is too large (over {limit:,} bytes)")
        return file.read_bytes()
    except OSError as error:
        raise RequestError(f"{name}: cannot read {path}: {error.strerror or 'error'}") from None


def packaged_guard(artifacts: dict[str, str], source: str) -> OodGuard | None:
    """The package's OOD guard, or None (with a note) for a package made before guards."""
    path = artifacts.get(OOD_ARTIFACT)
    if path is None:
        logger.info(
            "%s carries no out-of-distribution guard (packaged before it existed): images "
            "are not checked (ood_score empty, ood_flag false); package it again to add one",
            source,
        )
        return None
    return load_guard(path)


def ood_policy(value: str, source: str) -> OodPolicy:
    """``flag`` | ``label`` | ``off``, checked; ``source`` names where it was set."""
    if value not in ("flag", "label", "off"):
        raise InferenceSettingsError(f"{source} must be flag, label or off, got {value!r}")
    return value  # type: ignore[return-value]


def confined_path(path: str, root: str | None, name: str) -> Path:
    """``path`` (relative to ``root``, or absolute) as a regular file inside ``root``, resolved.

    Every symbolic link is resolved before the check, so neither ``../`` nor a
    link pointing outside the root reaches a file there.
    """
    if not root:
        raise RequestError(
            f"{name}: file paths are not accepted by this server (start it with "
            f"{SERVE_ROOT_ENV}=<folder> to allow paths inside that folder); send the "
            "image itself, base64-encoded, in the 'image' column",
            forbidden=True,
        )
    base = Path(root).resolve()
    # Where it leads first, existing or not: a path outside is refused the same way
    # whether or not its target exists (the answer must not probe the disk outside).
    resolved = Path(os.path.realpath(base / path))
    if not resolved.is_relative_to(base):
        raise RequestError(f"{name}: {path} is outside the served root", forbidden=True)
    if not resolved.exists():
        raise RequestError(f"{name}: no such file under the served root: {path}")
    if not resolved.is_file():
        raise RequestError(f"{name}: {path} is not a regular file")
    return resolved


def _positive_env(variable: str, default: int) -> int:
    """A positive integer from the server's environment, or a clear error naming it."""
    value = os.environ.get(variable, "")
    if not value:
        return default
    if not value.isdigit() or int(value) <= 0:
        raise MlflowException(f"{variable} must be a positive integer, got {value!r}")
    return int(value)


def _as_frame(model_input: Any) -> pd.DataFrame:
    if isinstance(model_input, dict):
        model_input = pd.DataFrame(model_input)
    if not isinstance(model_input, pd.DataFrame):
        raise RequestError(
            "send a table (dataframe_split or dataframe_records) with an 'image' or 'path' "
            f"column, got {type(model_input).__name__}"
        )
    if not {"image", "path"} & set(model_input.columns):
        raise RequestError(
            "the request needs an 'image' (base64) or 'path' column, got "
            f"{list(model_input.columns)}"
        )
    if model_input.empty:
        raise RequestError("the request holds no image (0 rows)")
    limit = int(os.environ.get(MAX_ROWS_ENV, DEFAULT_MAX_ROWS))
    if len(model_input) > limit:
        raise RequestError(
            f"the request holds {len(model_input)} images, over the limit of {limit} "
            f"per request ({MAX_ROWS_ENV})"
        )
    return model_input


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [dict(zip(frame.columns, values, strict=True)) for values in frame.itertuples(False)]


def _present(value: Any) -> Any:
    """None for a missing cell (None, NaN, ""), else the value."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
        return None
    return value


def _decode_base64(value: Any, name: str, limit: int) -> bytes:
    if isinstance(value, bytes | bytearray):
        data = bytes(value)
    elif isinstance(value, str):
        if len(value) * 3 // 4 > limit + 3:  # refused before decoding
            raise RequestError(f"{name}: the image is too large (over {limit:,} bytes)")
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as error:
            raise RequestError(f"{name}: 'image' is not valid base64 ({error})") from error
    else:
        raise RequestError(f"{name}: 'image' must be a base64 string, got {type(value).__name__}")
    if not data:
        raise RequestError(f"{name}: the image is empty (0 bytes)")
    if len(data) > limit:
        raise RequestError(f"{name}: the image is too large ({len(data):,} bytes, over {limit:,})")
    return data
