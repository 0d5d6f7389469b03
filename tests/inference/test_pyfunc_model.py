"""The MLflow model refuses what it cannot answer whole, naming the row and the reason."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from chest_xray.inference.classifier import OOD_COLUMNS
from chest_xray.inference.pyfunc_model import MAX_ROWS_ENV, SERVE_ROOT_ENV, confined_path
from tests.inference.new_images import encoded


@pytest.fixture(scope="module")
def served(package: Path):  # type: ignore[no-untyped-def]
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(str(package))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


PICTURE = np.random.default_rng(3).integers(0, 256, (64, 64), dtype=np.uint8)


def test_images_in_probability_and_label_out(served, classifier) -> None:  # type: ignore[no-untyped-def]
    data = encoded(PICTURE, "PNG")
    out = served.predict(pd.DataFrame({"image": [b64(data), b64(encoded(PICTURE, "JPEG"))]}))
    assert list(out.columns) == ["probability", "label", *OOD_COLUMNS, "threshold"]
    expected = classifier.probabilities(classifier.pixels(data, "x")[np.newaxis])[0]
    assert out["probability"][0] == pytest.approx(expected, abs=1e-6)
    assert set(out["label"]) <= {"NORMAL", "PNEUMONIA"}


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"image": pd.Series([], dtype=str)}), "no image"),
        (pd.DataFrame({"other": ["x"]}), "'image' (base64) or 'path' column"),
        (pd.DataFrame({"image": ["%%%not base64"]}), "row 0: 'image' is not valid base64"),
        (pd.DataFrame({"image": [b64(b"hello")]}), "row 0: not a usable image"),
        (pd.DataFrame({"image": [b64(b"")]}), "row 0"),
    ],
)
def test_a_bad_request_is_refused_with_its_reason(served, frame, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MlflowException, match=re.escape(message)) as caught:
        served.predict(frame)
    assert caught.value.get_http_status_code() == 400


def test_too_many_images_are_refused(served, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(MAX_ROWS_ENV, "2")
    image = b64(encoded(PICTURE, "PNG"))
    with pytest.raises(MlflowException, match="3 images, over the limit of 2"):
        served.predict(pd.DataFrame({"image": [image] * 3}))


def test_a_decompression_bomb_is_refused_not_decoded(served) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    bomb = encoded(np.zeros((1, 1), np.uint8), "PNG")
    # A PNG header claiming 20000 x 20000 pixels (over Pillow's limit at half of it).
    import struct
    import zlib

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    ihdr = b"IHDR" + header
    chunk = struct.pack(">I", len(header)) + ihdr + struct.pack(">I", zlib.crc32(ihdr))
    bomb = bomb[:8] + chunk + bomb[8 + len(chunk) :]
    assert Image.MAX_IMAGE_PIXELS is not None and 2 * Image.MAX_IMAGE_PIXELS < 20000 * 20000
    with pytest.raises(MlflowException, match="too large"):
        served.predict(pd.DataFrame({"image": [b64(bomb)]}))


def test_paths_are_refused_unless_a_root_is_served(served, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a.png").write_bytes(encoded(PICTURE, "PNG"))
    monkeypatch.delenv(SERVE_ROOT_ENV, raising=False)
    with pytest.raises(MlflowException, match="file paths are not accepted") as caught:
        served.predict(pd.DataFrame({"path": ["a.png"]}))
    assert caught.value.get_http_status_code() == 403
    monkeypatch.setenv(SERVE_ROOT_ENV, str(tmp_path))
    assert len(served.predict(pd.DataFrame({"path": ["a.png"]}))) == 1


def test_paths_cannot_leave_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "ok.png").write_bytes(b"x")
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"x")
    os.symlink(secret, root / "link.png")
    assert confined_path("sub/ok.png", str(root), "row 0") == (root / "sub" / "ok.png").resolve()
    assert confined_path(str(root / "sub/ok.png"), str(root), "row 0").name == "ok.png"
    for escape in ("../secret.png", "sub/../../secret.png", str(secret), "link.png"):
        with pytest.raises(MlflowException, match="outside the served root"):
            confined_path(escape, str(root), "row 0")
    with pytest.raises(MlflowException, match="no such file"):
        confined_path("missing.png", str(root), "row 0")
    with pytest.raises(MlflowException, match="not a regular file"):
        confined_path("sub", str(root), "row 0")
