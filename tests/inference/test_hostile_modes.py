"""Every image mode either becomes grey or is a counted skip, in the batch and the served
model alike: never an exception that stops the batch or a traceback in the answer."""

from __future__ import annotations

import base64
from pathlib import Path

import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from PIL import Image

from chest_xray.data import imaging
from chest_xray.inference.batch import predict_files
from chest_xray.inference.classifier import Classifier
from tests.data.test_hostile_images import encode, mode_image


@pytest.fixture(scope="module")
def served(package: Path):  # type: ignore[no-untyped-def]
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(str(package))


MODES = ["LAB", "CMYK", "YCbCr", "I;16", "I;16B", "I", "F", "P", "PA", "LA", "1", "RGBA"]


@pytest.fixture
def no_cmyk(monkeypatch: pytest.MonkeyPatch) -> None:
    """A mode whose conversion fails, as one a future Pillow might not convert."""
    real = imaging.to_grey

    def convert(image: Image.Image) -> Image.Image:
        if image.mode == "CMYK":
            raise ValueError("conversion from CMYK to L not supported")
        return real(image)

    monkeypatch.setattr(imaging, "to_grey", convert)


def tiffs() -> dict[str, bytes]:
    return {f"{mode}.tiff": encode(mode_image(mode), "TIFF") for mode in MODES}


def test_every_mode_is_predicted_or_skipped_with_its_reason(
    classifier: Classifier, no_cmyk: None
) -> None:
    files = {name: (lambda data=data: data) for name, data in tiffs().items()}
    result = predict_files(files, classifier, batch_size=4, workers=2)
    assert set(result.predictions["file"]) == set(files) - {"CMYK.tiff"}
    row = result.skipped.set_index("file").loc["CMYK.tiff"]
    assert row["category"] == "unsupported"
    assert row["reason"] == "cannot make a CMYK image grey: conversion from CMYK to L not supported"


def test_the_served_model_answers_every_mode(served) -> None:  # type: ignore[no-untyped-def]
    images = [base64.b64encode(data).decode() for data in tiffs().values()]
    answer = served.predict(pd.DataFrame({"image": images}))
    assert len(answer) == len(MODES)


def test_the_served_model_refuses_an_unconvertible_row_naming_it_without_a_traceback(
    served,  # type: ignore[no-untyped-def]
    no_cmyk: None,
) -> None:
    images = [base64.b64encode(encode(mode_image(mode), "TIFF")).decode() for mode in ("L", "CMYK")]
    with pytest.raises(MlflowException) as error:
        served.predict(pd.DataFrame({"image": images}))
    message = error.value.message
    assert message.startswith("row 1: not a usable image: cannot make a CMYK image grey")
    assert "Traceback" not in message and "/" not in message.split("grey")[1]


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("a\x00.png", "row 0: 'path' must be a file path (text without NUL bytes)"),
        ("x" * 5000 + ".png", "row 0: "),
        ("locked.png", "row 0: cannot read locked.png: "),
    ],
)
def test_a_bad_path_row_is_refused_in_one_line(  # type: ignore[no-untyped-def]
    served, path: str, says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHEST_XRAY_SERVE_ROOT", str(tmp_path))
    (tmp_path / "locked.png").write_bytes(encode(mode_image("L"), "PNG"))
    real = Path.read_bytes

    def denied(self: Path) -> bytes:
        if self.name == "locked.png":
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(MlflowException) as error:
        served.predict(pd.DataFrame({"path": [path]}))
    assert error.value.message.startswith(says)
    assert error.value.get_http_status_code() < 500
    assert "Traceback" not in error.value.message and str(tmp_path) not in error.value.message


def test_a_fault_of_the_model_is_one_line_without_a_traceback(  # type: ignore[no-untyped-def]
    served, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"oneDNN failed in {Path(__file__).parent}")

    model = served.unwrap_python_model()
    monkeypatch.setattr(model.classifier, "probabilities", broken)
    image = base64.b64encode(encode(mode_image("L"), "PNG")).decode()
    with pytest.raises(MlflowException) as error:
        served.predict(pd.DataFrame({"image": [image]}))
    assert error.value.message == (
        "the model failed on this request (RuntimeError); the server's log has the details"
    )
    assert error.value.get_http_status_code() == 500


def test_a_network_that_does_not_fit_its_package_is_refused_when_loaded(
    classifier: Classifier,
) -> None:
    from chest_xray.inference.settings import InferenceSettingsError
    from tests.inference.conftest import tiny_settings

    three = tiny_settings(
        task="multiclass", classes=("A", "B", "C"), threshold=None, threshold_source="argmax"
    )
    with pytest.raises(InferenceSettingsError, match=r"pkg: the network has 1 output.*needs 3"):
        Classifier(classifier.model, three, "pkg")
    with pytest.raises(InferenceSettingsError, match=r"takes images of \(40, 48, 1\)"):
        Classifier(classifier.model, tiny_settings(image_size=(64, 64)), "pkg")
