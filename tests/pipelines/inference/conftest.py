"""One project trained and evaluated for the whole package (the pipeline, CLI and serving tests):
a real ``kedro run`` on demo data takes most of these tests' time, so it is made once."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from chest_xray.tools.demo_data import write_demo_dataset
from tests.conftest import entered_project
from tests.inference.new_images import NewImages, write_new_images
from tests.pipelines.inference.trained_project import TEST_IMAGES, Project


@pytest.fixture(scope="package")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """Trained and evaluated once: the default pipeline on 240 demo images, 4 epochs."""
    root = tmp_path_factory.mktemp("project")
    raw = write_demo_dataset(tmp_path_factory.mktemp("raw") / "coronahack", n_train=240, seed=1)
    with entered_project(root):
        built = Project(root, raw.root)
        built.run(**{"training.epochs": 4})
        yield built


@pytest.fixture(scope="package")
def new_images(project: Project) -> NewImages:
    """data/01_raw/new_images: the demo test split's files as they are, plus every format."""
    root = project.data / "01_raw" / "new_images"
    shutil.copytree(project.raw / TEST_IMAGES, root / "test_split")
    pictures = []
    for path in sorted((root / "test_split").iterdir())[:3]:
        with Image.open(path) as image:
            pictures.append(np.asarray(image.convert("L")))
    made = write_new_images(root / "formats", pictures)
    readable = {f"formats/{name}" for name in made.readable} | {
        f"test_split/{path.name}" for path in (root / "test_split").iterdir()
    }
    skipped = {f"formats/{name}": category for name, category in made.skipped.items()}
    png, dicom = made.same_picture
    return NewImages(root, frozenset(readable), skipped, (f"formats/{png}", f"formats/{dicom}"))


@pytest.fixture(scope="package")
def predicted(project: Project, new_images: NewImages) -> pd.DataFrame:
    project.run("inference")
    return pd.read_csv(project.data / "07_model_output" / "inference_predictions.csv")
