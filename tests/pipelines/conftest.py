"""Fixtures for the real-run pipeline tests: a private copy of the demo download."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from chest_xray.tools.demo_data import DemoDatasetFacts

IMAGES = Path("Coronahack-Chest-XRay-Dataset") / "Coronahack-Chest-XRay-Dataset"
METADATA = "Chest_xray_Corona_Metadata.csv"


@pytest.fixture
def raw_copy(demo_dataset: DemoDatasetFacts, tmp_path: Path) -> Path:
    """A private copy of the demo download that a test may damage or rearrange."""
    return Path(shutil.copytree(demo_dataset.root, tmp_path / "raw"))
