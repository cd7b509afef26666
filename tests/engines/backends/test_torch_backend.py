"""The torch backend on the CPU (the fallback); its CUDA paths are in test_parity (gpu)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the torch backend needs defectd[train] (torch)")

from defectd.engines.backends.onnxruntime_backend import OnnxRuntimeEngine
from defectd.engines.backends.torch_backend import TorchEngine
from defectd.engines.model_card import read_card


def test_cpu_fp32_matches_onnxruntime(tiny_model: Path) -> None:
    card = read_card(tiny_model)
    frames = np.random.default_rng(1).integers(0, 255, (2, 256, 1600), dtype=np.uint8)
    with TorchEngine.from_card(card, threads=1, max_batch=2) as engine:
        assert (engine.info.backend, engine.info.device, engine.info.precision) == (
            "torch",
            "cpu",
            "fp32",
        )
        out = engine.infer(frames)
    ref = OnnxRuntimeEngine.from_card(card, threads=1).infer(frames)
    assert out.probs.dtype == np.float32 and out.probs.shape == (2, 4, 256, 1600)
    np.testing.assert_allclose(out.probs, ref.probs, atol=1e-4)
    np.testing.assert_allclose(out.presence, ref.presence, atol=1e-4)
    np.testing.assert_allclose(out.peak, ref.peak, atol=1e-4)


def test_refusals_say_what_to_do(tiny_model: Path, tmp_path: Path) -> None:
    card = read_card(tiny_model)
    with pytest.raises(ValueError, match="fp16 runs on CUDA only"):
        TorchEngine.from_card(card, "cpu", "fp16")
    with pytest.raises(FileNotFoundError, match="re-run `defectd export`"):
        TorchEngine(tmp_path / "absent.pt")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no usable CUDA"):
            TorchEngine.from_card(card, "cuda", "fp16")
