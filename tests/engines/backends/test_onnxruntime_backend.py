"""The ONNX Runtime backend on a real exported model: shapes, dtypes, clear input errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from defectd.engines.backends.onnxruntime_backend import OnnxRuntimeEngine
from defectd.engines.model_card import read_card


def test_runs_a_batch_and_reports_consistent_outputs(tiny_model: Path) -> None:
    card = read_card(tiny_model)
    engine = OnnxRuntimeEngine.from_card(card, threads=1)
    frames = np.random.default_rng(0).integers(0, 255, (3, 256, 1600), dtype=np.uint8)
    out = engine.infer(frames)
    assert out.probs.shape == (3, 4, 256, 1600)
    assert out.presence.shape == out.peak.shape == (3, 4)
    assert float(out.probs.min()) >= 0.0 and float(out.probs.max()) <= 1.0
    np.testing.assert_allclose(out.peak, out.probs.max(axis=(2, 3)), atol=1e-6)
    # N×1×H×W is the same batch.
    again = engine.infer(frames[:, None])
    np.testing.assert_array_equal(again.probs, out.probs)


def test_fp16_file_runs_on_the_cpu(tiny_model: Path) -> None:
    card = read_card(tiny_model)
    out = OnnxRuntimeEngine.from_card(card, "fp16", threads=1).infer(
        np.zeros((1, 256, 1600), np.uint8)
    )
    assert out.probs.dtype == np.float16


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (np.zeros((1, 256, 1600), np.float32), "send raw 8-bit grey"),
        (
            np.zeros((1, 1600, 256), np.uint8),
            r"expects N×1×256×1600 uint8 frames, got 1×1×1600×256",
        ),
        (np.zeros((0, 256, 1600), np.uint8), "empty batch"),
    ],
)
def test_bad_input_names_the_expected_shape(
    tiny_model: Path, frames: np.ndarray, message: str
) -> None:
    engine = OnnxRuntimeEngine.from_card(read_card(tiny_model), threads=1)
    with pytest.raises(ValueError, match=message):
        engine.infer(frames)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="ONNX file not found"):
        OnnxRuntimeEngine(tmp_path / "absent.onnx")
