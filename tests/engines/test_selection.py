"""Backend selection: the `auto` rule, explicit choices, install hints, model/frame checks."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from defectd.engines.model_card import read_card
from defectd.engines.selection import (
    EngineConfig,
    FrameFormat,
    Platform,
    check_model_fits,
    choose_backend,
    detect_platform,
    open_engine,
)

CPU_ONLY = Platform(tensorrt=False, torch=True, torch_cuda=False, onnxruntime_cuda=False)
TORCH_GPU = replace(CPU_ONLY, torch_cuda=True)
FULL_GPU = replace(TORCH_GPU, tensorrt=True)
NO_TORCH = replace(CPU_ONLY, torch=False)


@pytest.mark.parametrize(
    ("platform", "backend", "device", "precision"),
    [
        (FULL_GPU, "tensorrt", "cuda", "fp16"),
        (TORCH_GPU, "torch", "cuda", "fp16"),
        (CPU_ONLY, "onnxruntime", "cpu", "fp32"),
        (NO_TORCH, "onnxruntime", "cpu", "fp32"),
    ],
)
def test_auto_prefers_tensorrt_then_torch_cuda_then_onnxruntime(
    platform: Platform, backend: str, device: str, precision: str
) -> None:
    choice = choose_backend(EngineConfig(), platform)
    assert (choice.backend, choice.device, choice.precision) == (backend, device, precision)
    assert choice.reason.startswith("auto:")


def test_explicit_backends_and_what_to_install() -> None:
    assert choose_backend(EngineConfig(backend="torch"), CPU_ONLY).device == "cpu"
    assert choose_backend(EngineConfig(backend="null"), CPU_ONLY).backend == "null"
    with pytest.raises(RuntimeError, match=r"pip install 'defectd\[gpu\]'"):
        choose_backend(EngineConfig(backend="tensorrt"), TORCH_GPU)
    with pytest.raises(RuntimeError, match=r"pip install 'defectd\[train\]'"):
        choose_backend(EngineConfig(backend="torch"), NO_TORCH)
    with pytest.raises(ValueError, match="torch fp16 needs CUDA"):
        choose_backend(EngineConfig(backend="torch", precision="fp16"), CPU_ONLY)
    with pytest.raises(ValueError, match=r"set engine\.precision fp16"):
        choose_backend(EngineConfig(backend="tensorrt", precision="fp32"), FULL_GPU)


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match=r"engine\.backend 'tvm' is not one of auto"):
        EngineConfig(backend="tvm")
    with pytest.raises(ValueError, match=r"engine\.opt_batch must be in 1\.\.max_batch"):
        EngineConfig(max_batch=4, opt_batch=8)
    with pytest.raises(ValueError, match=r"unknown key.*batch_size"):
        EngineConfig.from_mapping({"backend": "null", "batch_size": 3})
    config = EngineConfig.from_mapping({"backend": "onnxruntime", "threads": 2, "max_batch": 4})
    assert (config.backend, config.threads, config.max_batch) == ("onnxruntime", 2, 4)


def test_this_machine_is_detected_without_a_gpu() -> None:
    platform = detect_platform()
    # torch is there with defectd[train] (make test), absent in the wheel check's clean venv
    assert platform.torch == (importlib.util.find_spec("torch") is not None)
    if not platform.gpu:
        assert choose_backend(EngineConfig(), platform).backend == "onnxruntime"


def test_open_engine_logs_the_choice_and_warms_up(
    tiny_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="defectd.engines.selection")
    config = EngineConfig(backend="auto", max_batch=2, opt_batch=1, threads=1)
    with open_engine(tiny_model, config, platform=CPU_ONLY) as engine:
        assert (engine.info.backend, engine.info.precision, engine.info.max_batch) == (
            "onnxruntime",
            "fp32",
            2,
        )
        assert engine.infer(np.zeros((2, 256, 1600), np.uint8)).probs.shape == (2, 4, 256, 1600)
    assert engine.closed
    assert "engine: onnxruntime on cpu, fp32, max batch 2" in caplog.text
    assert "auto: no GPU backend usable" in caplog.text


def test_null_engine_needs_no_model() -> None:
    with open_engine(None, EngineConfig(backend="null", max_batch=3)) as engine:
        assert engine.info.backend == "null" and engine.info.max_batch == 3
    with pytest.raises(ValueError, match="needs a model directory"):
        open_engine(None, EngineConfig(backend="onnxruntime"))


def test_a_model_that_does_not_fit_the_frames_refuses_to_start(tiny_model: Path) -> None:
    card = read_card(tiny_model)
    check_model_fits(card, FrameFormat(256, 1600, 1, card.classes))
    check_model_fits(card, FrameFormat(512, 2048))  # other sizes are tiled (tiled_engine)
    check_model_fits(card, FrameFormat(64, 64))
    with pytest.raises(ValueError, match="takes 1-channel frames, the cameras send 3"):
        check_model_fits(card, FrameFormat(256, 1600, 3))
    with pytest.raises(ValueError, match="has classes"):
        check_model_fits(card, FrameFormat(256, 1600, 1, ("a", "b")))
    with pytest.raises(ValueError, match="the cameras send 3"):
        open_engine(tiny_model, EngineConfig(backend="null"), FrameFormat(512, 2048, 3))
