"""Shared fixtures: a ZeroMQ context; paths to the real Severstal slice beside the checkout."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

REPO = Path(__file__).resolve().parents[1]
SEVERSTAL = Path(os.environ.get("DEFECTD_SEVERSTAL", REPO.parent / "shared" / "severstal"))


@pytest.fixture
def context() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    """A ZeroMQ context for the test's own sockets, destroyed (linger 0) after it."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


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


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 synthetic frames (seed 3) in the Severstal layout."""
    from defectd.engines.synth import write_dataset

    root = tmp_path_factory.mktemp("tiny-data")
    write_dataset(root, count=24, seed=3, overwrite=True)
    return root


@pytest.fixture(scope="session")
def tiny_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained 3 short epochs on `tiny_data` (run directory)."""
    pytest.importorskip("torch", reason="training needs defectd[train] (torch)")
    from defectd.training.augment import AugmentConfig
    from defectd.training.model.model import ModelConfig
    from defectd.training.trainer import TrainConfig, Trainer

    out = tmp_path_factory.mktemp("tiny-run") / "run"
    config = TrainConfig(
        data=str(tiny_data),
        out=str(out),
        model=ModelConfig(encoder_width=0.125, decoder_channels=16),
        augment=AugmentConfig(crop=(128, 256)),
        epochs=3,
        batch_size=4,
        steps_per_epoch=8,
        val_split=0.25,
        lr=1e-2,
        seed=5,
        workers=0,
    )
    Trainer(config, command="defectd train (test fixture)").run(progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_model(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tiny_run` exported to a model directory (FP32 + FP16 ONNX and card)."""
    from defectd.training.export import export_model

    out = tmp_path_factory.mktemp("tiny-model")
    export_model(tiny_run, out, "tiny", "0.0.1", "defectd export (test fixture)")
    return out


@pytest.fixture(scope="session")
def tiny_int8_model(
    tiny_model: Path, tiny_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """`tiny_model` with an INT8 file accepted on ONNX Runtime by `defectd quantize` (a loose
    tolerance: the tiny model is barely trained; what is tested is the mechanism)."""
    pytest.importorskip("onnx", reason="quantization needs defectd[int8] (the onnx package)")
    import shutil

    from defectd.daemon.cli import main

    model = Path(shutil.copytree(tiny_model, tmp_path_factory.mktemp("int8") / "model"))
    assert main(["quantize", "--model", str(model), "--data", str(tiny_data),
                 "--calibration", str(tiny_data), "--calibration-frames", "4",
                 "--max-frames", "6", "--tolerance", "0.5", "--max-flips", "6",
                 "--runtimes", "onnxruntime", "--threads", "1", "--no-progress"]) == 0  # fmt: skip
    return model
