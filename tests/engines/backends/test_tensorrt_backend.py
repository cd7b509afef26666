"""The TensorRT backend: a real build on a GPU, parity with ONNX Runtime FP32, the cache.

The GPU tests need TensorRT, pycuda and an NVIDIA GPU, and skip with the reason otherwise.
Without TensorRT, what is tested is what a user without it sees: one line with the install
hint. Nothing here fakes TensorRT.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from defectd.daemon import cli
from defectd.daemon.cli import CommandError
from defectd.daemon.commands import build_engine
from defectd.engines.backends.onnxruntime_backend import OUTPUTS, OnnxRuntimeEngine
from defectd.engines.backends.tensorrt_backend import TensorRTEngine, engine_key, ensure_engine
from defectd.engines.engine_cache import EngineCache
from defectd.engines.model_card import InputSpec, ModelCard, ModelFile, read_card
from defectd.engines.postprocess import PostprocessConfig
from defectd.engines.tensorrt_build import TensorRTUnavailable, gpu_identity

HAS_TENSORRT = all(importlib.util.find_spec(name) for name in ("tensorrt", "pycuda"))
no_tensorrt = pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT and pycuda are installed here")
HINT = "pip install defectd[gpu]"


@pytest.fixture(scope="session")
def trt_gpu() -> str:
    """The GPU name; skips unless tensorrt, pycuda and a CUDA GPU are all usable."""
    pytest.importorskip("tensorrt", reason=f"TensorRT is not installed ({HINT})")
    pytest.importorskip("pycuda.driver", reason=f"pycuda is not installed ({HINT})")
    try:
        name, _ = gpu_identity()
    except TensorRTUnavailable as exc:
        pytest.skip(f"no usable GPU for TensorRT: {exc}")
    return name


@pytest.fixture(scope="session")
def engine_dir(trt_gpu: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engines")


def test_modules_import_without_tensorrt() -> None:
    code = (
        "import sys, engines.backends.tensorrt_backend, engines.tensorrt_build, "
        "daemon.commands.build_engine\n"
        "print(','.join(m for m in ('tensorrt', 'pycuda') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def _card(directory: Path) -> ModelCard:
    return ModelCard(
        name="tiny",
        version="0.0.1",
        classes=("1", "2", "3", "4"),
        input=InputSpec(),
        normalisation={"mean": 0.5, "std": 0.25},
        outputs=OUTPUTS,
        thresholds=PostprocessConfig(),
        files={"fp16": ModelFile("model.fp16.onnx", "0" * 64)},
        directory=directory,
    )


@no_tensorrt
def test_from_card_without_tensorrt_names_the_install(tmp_path: Path) -> None:
    with pytest.raises(TensorRTUnavailable, match=r"pip install defectd\[gpu\]"):
        TensorRTEngine.from_card(_card(tmp_path), cache_dir=tmp_path)


@no_tensorrt
def test_build_engine_without_tensorrt_prints_the_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(prog="defectd")
    build_engine.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["build-engine", "--model", str(tmp_path)])
    with pytest.raises(
        CommandError, match=r"TensorRT is not installed: pip install defectd\[gpu\]"
    ):
        args.handler(args)
    # Through the real CLI.
    assert cli.main(["build-engine", "--model", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and HINT in err and err.startswith("defectd build-engine: error:")


@pytest.mark.gpu
def test_fp16_engine_matches_onnxruntime_fp32(
    trt_gpu: str, engine_dir: Path, tiny_model: Path
) -> None:
    card = read_card(tiny_model)
    frames = np.random.default_rng(0).integers(0, 256, (3, 256, 1600), dtype=np.uint8)
    reference = OnnxRuntimeEngine.from_card(card, "fp32").infer(frames)
    with TensorRTEngine.from_card(
        card, max_batch=4, opt_batch=2, cache_dir=engine_dir, workspace_mb=1024
    ) as engine:
        assert engine.info.backend == "tensorrt" and engine.precision == "fp16"
        assert engine.info.device == f"cuda:0 {trt_gpu}"
        out = engine.infer(frames)
    assert out.probs.dtype == np.float16 and out.probs.shape == (3, 4, 256, 1600)
    for name in OUTPUTS:
        got, want = getattr(out, name).astype(np.float32), getattr(reference, name)
        assert float(np.abs(got - want).max()) <= 1e-2, name


@pytest.mark.gpu
def test_pipelined_batches_match_single_batches(
    trt_gpu: str, engine_dir: Path, tiny_model: Path
) -> None:
    card = read_card(tiny_model)
    rng = np.random.default_rng(1)
    batches = [rng.integers(0, 256, (n, 1, 256, 1600), dtype=np.uint8) for n in (1, 4, 2, 3, 4)]
    with TensorRTEngine.from_card(
        card, max_batch=4, opt_batch=2, cache_dir=engine_dir, workspace_mb=1024
    ) as engine:
        single = [engine.infer(batch) for batch in batches]
        piped = list(engine.infer_many(batches))
        assert len(list(engine.infer_many([]))) == 0
        engine.infer(batches[0])  # usable again after the iterator finished
    assert len(piped) == len(batches)
    for one, many in zip(single, piped, strict=True):
        np.testing.assert_allclose(many.probs, one.probs, atol=1e-3)
        np.testing.assert_allclose(many.presence, one.presence, atol=1e-3)


@pytest.mark.gpu
def test_cached_engine_is_reused_not_rebuilt(
    trt_gpu: str, tmp_path: Path, tiny_model: Path
) -> None:
    card = read_card(tiny_model)
    path, built = ensure_engine(card, 2, 1, tmp_path, 1024)
    stamp = path.stat().st_mtime_ns
    assert built and path.is_file()
    assert ensure_engine(card, 2, 1, tmp_path, 1024) == (path, False)
    with TensorRTEngine.from_card(
        card, max_batch=2, opt_batch=1, cache_dir=tmp_path, workspace_mb=1024
    ) as engine:
        engine.infer(np.zeros((2, 256, 1600), np.uint8))
    assert path.stat().st_mtime_ns == stamp
    assert ensure_engine(card, 2, 2, tmp_path, 1024)[1]  # another profile: another engine


@pytest.mark.gpu
def test_undeserializable_cached_engine_is_rebuilt(
    trt_gpu: str, tmp_path: Path, tiny_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    card = read_card(tiny_model)
    key = engine_key(card, 2, 1, 1024)
    EngineCache(tmp_path).store(key, b"not a TensorRT plan")  # passes the sha256 check
    with caplog.at_level(logging.WARNING):
        engine = TensorRTEngine.from_card(
            card, max_batch=2, opt_batch=1, cache_dir=tmp_path, workspace_mb=1024
        )
    with engine:
        engine.infer(np.zeros((1, 256, 1600), np.uint8))
    assert "rebuilding" in caplog.text
    assert EngineCache(tmp_path).load(key) != b"not a TensorRT plan"
    engine.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        engine.infer(np.zeros((1, 256, 1600), np.uint8))
