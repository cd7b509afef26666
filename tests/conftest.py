"""Shared fixtures: paths to the real Severstal slice beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SEVERSTAL = Path(os.environ.get("DEFECTD_SEVERSTAL", REPO.parent / "shared" / "severstal"))


@pytest.fixture(scope="session")
def severstal_dir() -> Path:
    """The real competition slice (../shared/severstal); skips when it is not there."""
    if not (SEVERSTAL / "train.csv").is_file():
        pytest.skip(
            f"real Severstal slice not found at {SEVERSTAL} "
            "(set DEFECTD_SEVERSTAL to a folder with train.csv and train_images/)"
        )
    return SEVERSTAL
