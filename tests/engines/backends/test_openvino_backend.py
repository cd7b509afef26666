"""The OpenVINO backend on a real exported model: the same outputs as ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from defectd.engines.errors import InvalidSetting, MissingDependency
from defectd.engines.model_card import read_card
from defectd.engines.selection import EngineConfig, Platform, choose_backend, open_engine

CPU_ONLY = Platform(tensorrt=False, torch=True, torch_cuda=False, onnxruntime_cuda=False)


def test_fp32_matches_onnxruntime(tiny_model: Path) -> None:
    pytest.importorskip("openvino", reason="the OpenVINO backend needs defectd[openvino]")
    frames = np.random.default_rng(0).integers(0, 255, (2, 256, 1600), dtype=np.uint8)
    config = EngineConfig(backend="openvino", threads=1, max_batch=2, warmup=False)
    with open_engine(tiny_model, config) as engine:
        assert engine.info.backend == "openvino" and engine.info.precision == "fp32"
        out = engine.infer(frames)
        single = engine.infer(frames[:1])  # the batch dimension stays dynamic
    ort = EngineConfig(backend="onnxruntime", threads=1, max_batch=2, warmup=False)
    reference = open_engine(tiny_model, ort).infer(frames)
    assert out.probs.shape == (2, 4, 256, 1600) and out.probs.dtype == np.float32
    # f32 inference precision: not the bf16 OpenVINO picks by itself on CPUs that have it.
    np.testing.assert_allclose(out.probs, reference.probs, atol=1e-4)
    np.testing.assert_allclose(out.presence, reference.presence, atol=1e-4)
    np.testing.assert_allclose(single.probs[0], out.probs[0], atol=1e-5)


def test_openvino_refuses_what_it_cannot_run(tiny_model: Path) -> None:
    pytest.importorskip("openvino", reason="the OpenVINO backend needs defectd[openvino]")
    from defectd.engines.backends.openvino_backend import OpenVinoEngine

    with pytest.raises(InvalidSetting, match="fp32 or int8"):
        OpenVinoEngine.from_card(read_card(tiny_model), "fp16")
    with pytest.raises(FileNotFoundError, match="ONNX file not found"):
        OpenVinoEngine(tiny_model / "missing.onnx")


def test_choosing_openvino_needs_it_installed_and_the_cpu() -> None:
    with pytest.raises(MissingDependency, match=r"defectd\[openvino\]"):
        choose_backend(EngineConfig(backend="openvino"), CPU_ONLY)
    with_openvino = Platform(False, True, False, False, openvino=True)
    assert choose_backend(EngineConfig(backend="openvino"), with_openvino).precision == "fp32"
    with pytest.raises(InvalidSetting, match="runs on the CPU"):
        choose_backend(EngineConfig(backend="openvino", device="cuda"), with_openvino)
    with pytest.raises(InvalidSetting, match="fp32 or int8"):
        choose_backend(EngineConfig(backend="openvino", precision="fp16"), with_openvino)
