"""The CPU engines of a model side by side, as ratios and shares of the measured peak."""

from __future__ import annotations

from pathlib import Path

import pytest

from defectd.daemon.cli import main
from defectd.engines.benchmarks.side_by_side import format_markdown, run_side_by_side

pytest.importorskip("onnx", reason="the peak microbenchmark builds ONNX graphs (defectd[int8])")


def test_every_runnable_engine_is_timed_and_the_rest_named(tiny_int8_model: Path) -> None:
    result = run_side_by_side(
        [tiny_int8_model], batches=(1,), seconds=0.3, rounds=1, threads=1, peak_seconds=0.05
    )
    engines = {(f.backend, f.precision) for f in result.figures}
    assert {("onnxruntime", "fp32"), ("onnxruntime", "int8")} <= engines
    # Checked on ONNX Runtime only: OpenVINO may not run the INT8 file (or is not installed).
    assert any("openvino int8" in line for line in result.skipped)
    for f in result.figures:
        assert f.frames_per_s > 0 and f.p50_ms <= f.p99_ms
        best = result.peak.int8_gops if f.precision == "int8" else result.peak.fp32_gops
        if f.gops is not None and best:
            assert f.peak_share == pytest.approx(f.gops / best)
    base = result.figure("tiny 0.0.1", ("onnxruntime", "fp32"), 1)
    assert base is not None and result.ratio(base) == pytest.approx(1.0)
    text = format_markdown(result)
    assert "| onnxruntime int8 | 1 |" in text and "Not run:" in text


def test_the_cli_refuses_single_engine_options(
    tiny_int8_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "engine", "--side-by-side", "--backend", "torch"]) == 2
    assert "--backend has no effect with --side-by-side" in capsys.readouterr().err
    assert main(["bench", "engine", "--models", str(tiny_int8_model)]) == 2
    assert "--models has no effect without --side-by-side" in capsys.readouterr().err
