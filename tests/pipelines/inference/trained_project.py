"""The throw-away project the inference tests share, and images no X-ray model should label."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from kedro.framework.session import KedroSession
from PIL import Image

from tests.conftest import nest

TEST_IMAGES = Path("Coronahack-Chest-XRay-Dataset", "Coronahack-Chest-XRay-Dataset", "test")


class Project:
    """A throw-away project (as tests/conftest.py's kedro_project) shared by this package."""

    def __init__(self, root: Path, raw: Path) -> None:
        self.root, self.raw = root, raw

    def run(self, pipeline: str | None = None, **params: object) -> None:
        runtime = nest({"raw_root": str(self.raw), "preprocessing.workers": 1, **params})
        with KedroSession.create(project_path=self.root, env="demo", runtime_params=runtime) as s:
            s.run(pipeline_names=[pipeline] if pipeline else None)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def mlflow(self):  # type: ignore[no-untyped-def]
        import mlflow

        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
        return mlflow.MlflowClient()


def not_x_rays() -> dict[str, np.ndarray]:
    """Two images no X-ray model should label: a blank one and uniform noise."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (256, 256)).astype(np.uint8)
    return {"blank.png": np.zeros((256, 256), np.uint8), "noise.png": noise}


def png_bytes(pixels: np.ndarray) -> bytes:
    """``pixels`` as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
