"""predict_files: every readable file predicted, every other one listed with its reason."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from chest_xray.inference.batch import PREDICTION_COLUMNS, most_confident, predict_files
from chest_xray.inference.classifier import Classifier
from chest_xray.inference.explain import gradcam_overlays
from tests.inference.conftest import tiny_settings
from tests.inference.new_images import write_new_images


def pictures(n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [rng.integers(0, 256, (120, 100), dtype=np.uint8) for _ in range(n)]


def listing(root: Path) -> dict[str, Callable[[], bytes]]:
    return {
        str(path.relative_to(root)): path.read_bytes
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_a_mixed_folder_is_predicted_and_its_bad_files_listed(
    classifier: Classifier, tmp_path: Path
) -> None:
    folder = write_new_images(tmp_path / "new", pictures())
    result = predict_files(listing(folder.root), classifier, batch_size=2, workers=2)
    assert list(result.predictions.columns) == PREDICTION_COLUMNS
    assert set(result.predictions["file"]) == folder.readable
    assert dict(zip(result.skipped["file"], result.skipped["category"], strict=True)) == (
        folder.skipped
    )
    reasons = dict(zip(result.skipped["file"], result.skipped["reason"], strict=True))
    assert "frames" in reasons["bad/multi.dcm"]
    assert "pixel data" in reasons["bad/report.dcm"]
    assert "empty" in reasons["bad/empty.png"]
    prob = dict(zip(result.predictions["file"], result.predictions["probability"], strict=True))
    png, dicom = folder.same_picture
    assert prob[png] == pytest.approx(prob[dicom], abs=1e-6)
    assert (result.predictions["model"] == classifier.source).all()
    assert (result.predictions["threshold"] == 0.5).all()


def test_the_batch_size_does_not_change_a_probability(
    classifier: Classifier, tmp_path: Path
) -> None:
    folder = write_new_images(tmp_path / "new", pictures())
    one = predict_files(listing(folder.root), classifier, batch_size=1)
    many = predict_files(listing(folder.root), classifier, batch_size=64)
    np.testing.assert_allclose(
        one.predictions["probability"], many.predictions["probability"], atol=1e-6
    )


def test_a_file_over_the_size_limit_is_skipped_unread(classifier: Classifier) -> None:
    small = Classifier(classifier.model, tiny_settings(max_image_bytes=10), "x")

    def never() -> bytes:
        raise AssertionError("read")

    result = predict_files({"huge.png": never}, small, sizes={"huge.png": 11})
    assert result.predictions.empty
    assert result.skipped.iloc[0]["category"] == "too_large"


def test_an_unreadable_file_is_a_skip_not_a_crash(classifier: Classifier) -> None:
    def gone() -> bytes:
        raise FileNotFoundError("link.png is a symbolic link to /nowhere, which does not exist")

    result = predict_files({"link.png": gone}, classifier)
    assert "symbolic link" in result.skipped.iloc[0]["reason"]


def test_most_confident_takes_both_ends() -> None:
    import pandas as pd

    table = pd.DataFrame({"file": list("abcdef"), "probability": [0.5, 0.9, 0.1, 0.6, 0.01, 0.99]})
    assert most_confident(table, 2) == ["b", "c", "e", "f"]
    assert most_confident(table, 10) == list("abcdef")


def test_gradcam_overlays_are_lazy_pngs(classifier: Classifier, tmp_path: Path) -> None:
    folder = write_new_images(tmp_path / "new", pictures())
    files = listing(folder.root)
    names = sorted(folder.readable)
    overlays = gradcam_overlays(files, names, classifier, batch_size=2)
    assert list(overlays) == names
    first = overlays[names[0]]()
    assert first.startswith(b"\x89PNG")
    import io

    from PIL import Image

    with Image.open(io.BytesIO(first)) as image:
        assert image.mode == "RGB" and image.size == (48, 40)
