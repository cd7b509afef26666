"""The engine interface shared by every backend: batch checks, warm-up, closing."""

from __future__ import annotations

import numpy as np
import pytest

from defectd.engines.backends.null_backend import NullEngine
from defectd.engines.engine import Engine, EngineInfo, EngineOutput, as_batch, warmup_sizes
from defectd.engines.model_card import InputSpec


def test_warmup_sizes_cover_what_a_batcher_sends() -> None:
    assert warmup_sizes(1) == (1,)
    assert warmup_sizes(8) == (1, 2, 4, 8)
    assert warmup_sizes(12) == (1, 2, 4, 8, 12)


def test_batches_over_max_batch_are_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="over this engine's max_batch 2: split it"):
        as_batch(np.zeros((3, 256, 1600), np.uint8), InputSpec(), max_batch=2)
    engine = NullEngine(max_batch=2)
    with pytest.raises(ValueError, match="max_batch 2"):
        engine.infer(np.zeros((3, 256, 1600), np.uint8))


def test_properties_and_metric_labels() -> None:
    engine = NullEngine(classes=("a", "b"), max_batch=4, model="m 1")
    assert (engine.info.backend, engine.info.device, engine.info.precision) == (
        "null",
        "cpu",
        "fp32",
    )
    assert engine.info.max_batch == 4 and engine.info.classes == ("a", "b")
    assert engine.input == InputSpec()
    assert engine.info.labels() == {
        "backend": "null",
        "device": "cpu",
        "precision": "fp32",
        "max_batch": "4",
        "model": "m 1",
    }
    assert "null on cpu" in engine.info.describe()


def test_context_manager_closes_and_a_closed_engine_refuses_work() -> None:
    with NullEngine(max_batch=2) as engine:
        engine.warmup()
        assert engine.infer(np.zeros((2, 256, 1600), np.uint8)).presence.shape == (2, 4)
    assert engine.closed
    engine.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        engine.infer(np.zeros((1, 256, 1600), np.uint8))


class _Zeros(Engine):
    """The smallest real backend: zeros of the right shapes."""

    def _run(self, batch: np.ndarray) -> EngineOutput:
        n = batch.shape[0]
        return EngineOutput(np.zeros((n, 1, 4, 4)), np.zeros((n, 1)), np.zeros((n, 1)))


def test_info_is_validated() -> None:
    spec = InputSpec(height=4, width=4)
    assert _Zeros(EngineInfo("null", "cpu", "fp32", 1, "m", ("a",)), spec).name == "null:fp32"
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        _Zeros(EngineInfo("null", "cpu", "fp8", 1, "m", ("a",)), spec)
    with pytest.raises(ValueError, match="unknown backend 'tvm'"):
        _Zeros(EngineInfo("tvm", "cpu", "fp32", 1, "m", ("a",)), spec)
