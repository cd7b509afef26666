"""Fine-tuning a shipped model: a model directory read as a checkpoint (its TorchScript)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs defectd[train] (torch)")

from defectd.engines.backends.onnxruntime_backend import OnnxRuntimeEngine  # noqa: E402
from defectd.engines.model_card import bundled_model_dir, read_card  # noqa: E402
from defectd.training.checkpoint import load_checkpoint  # noqa: E402
from defectd.training.config import TrainError  # noqa: E402
from defectd.training.model.graph import InferenceGraph  # noqa: E402


def test_the_bundled_model_directory_loads_with_the_weights_its_onnx_runs() -> None:
    directory = bundled_model_dir()
    model, (mean, std), state = load_checkpoint(directory)
    card = read_card(directory)
    assert state["model_config"]["encoder_width"] == card.architecture["encoder_width"]
    assert (mean, std) == (card.normalisation["mean"], card.normalisation["std"])
    frames = np.random.default_rng(3).integers(0, 255, (2, 1, *card.input.shape), np.uint8)
    with torch.inference_mode():
        probs, presence, _ = InferenceGraph(model, mean, std).eval()(torch.from_numpy(frames))
    with OnnxRuntimeEngine.from_card(card, "fp32", max_batch=2) as engine:
        output = engine.infer(frames)
    assert np.abs(probs.numpy() - output.probs).max() < 1e-4
    assert np.abs(presence.numpy() - output.presence).max() < 1e-4


def test_a_model_directory_without_torchscript_weights_is_refused(tmp_path: Path) -> None:
    source = bundled_model_dir()
    copy = tmp_path / "model"
    copy.mkdir()
    for path in Path(source).iterdir():
        if path.name != "model.torchscript.pt":
            (copy / path.name).write_bytes(path.read_bytes())
    card = (copy / "model_card.json").read_text(encoding="utf-8")
    assert '"torch"' in card
    data = json.loads(card)
    del data["files"]["torch"]
    (copy / "model_card.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(TrainError, match="no TorchScript weights"):
        load_checkpoint(copy)
