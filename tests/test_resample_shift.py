"""scripts/resample_shift.py: which filter made the copies, and the three ways scored."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from chest_xray.inference.packaging import ServableModel, save_servable_model
from chest_xray.tools.demo_data import IMAGES_DIR
from tests.inference.conftest import tiny_model, tiny_settings
from tests.inference.new_images import encoded
from tests.scripts import ROOT, load_script

SCRIPT = ROOT / "scripts" / "resample_shift.py"


@pytest.fixture(scope="module")
def script():
    return load_script(SCRIPT)


def _jpeg(image: Image.Image) -> bytes:
    return encoded(np.asarray(image), "JPEG", quality=75)


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """Six textured 'originals' and their copies, made as the shared copy's were: squashed
    to 224 x 224 by a bilinear resize, JPEG quality 75; one original without a copy."""
    rng = np.random.default_rng(0)
    fullres, copies = tmp_path / "fullres", tmp_path / "copies"
    train = copies / IMAGES_DIR / "train"
    fullres.mkdir()
    train.mkdir(parents=True)
    rows = []
    for k in range(7):
        pixels = rng.integers(0, 256, (600 + 40 * k, 800), dtype=np.uint8)
        original = Image.fromarray(pixels).resize((800, 600 + 40 * k), Image.Resampling.BOX)
        name = f"IM-{k:04d}-0001.jpeg"
        (fullres / name).write_bytes(_jpeg(original))
        if k < 6:  # from the original file as decoded, as whoever made the copies read it
            decoded = Image.open(fullres / name).convert("L")
            copy = decoded.resize((224, 224), Image.Resampling.BILINEAR)
            (train / name).write_bytes(_jpeg(copy))
            rows.append({"X_ray_image_name": name, "Label": "Normal" if k % 2 else "Pnemonia"})
    pd.DataFrame(rows).to_csv(copies / "Chest_xray_Corona_Metadata.csv", index=False)
    return fullres, copies


def test_the_pairs_and_the_filter_that_made_the_copies(script, folders) -> None:
    table = script.pairs(*folders)
    assert list(table["y"]) == [1, 0, 1, 0, 1, 0]  # the original without a copy is left out
    distances = script.filter_distances(table)
    assert min(distances, key=distances.__getitem__) == "bilinear"


def test_the_copy_path_gives_the_copy_and_every_way_is_scored(
    script, folders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "servable_model"
    save_servable_model(ServableModel(tiny_model(), tiny_settings()), package)
    out = tmp_path / "shift.json"
    fullres, copies = folders
    argv = ["resample_shift", str(package), f"--fullres={fullres}", f"--copies={copies}"]
    monkeypatch.setattr(sys, "argv", [*argv, f"--out={out}"])
    assert script.main() == 0
    result = json.loads(out.read_text())
    assert result["images"] == 6 and result["pneumonia"] == 3
    ways = result["against_copy"]
    assert ways["copy"]["max_abs_change"] == 0.0
    # preprocessing.via_size re-makes the original as the copies were: no change at all
    assert ways["original, via_size 224"]["max_abs_change"] == 0.0
    assert result["nearest_filter"] == "bilinear"
    assert set(ways["original"]) == {
        "mean_abs_change",
        "max_abs_change",
        "label_flips",
        "accuracy",
        "ood_flagged",
    }
