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


def _cuda_available() -> str | None:
    """None when a CUDA device is usable from torch, else why not."""
    try:
        import torch
    except ImportError:
        return "torch is not installed (pip install 'defectd[train]')"
    if not torch.cuda.is_available():
        return "no CUDA device visible to torch"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip `gpu`-marked tests cleanly, with the reason, where there is no CUDA device."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    reason = _cuda_available()
    if reason is None:
        return
    for item in gpu_items:
        item.add_marker(pytest.mark.skip(reason=f"gpu test: {reason}"))
