"""`bench peak` on tiny kernels: figures consistent, INT8 graphs real and fused, runtimes optional.

Timings are never judged; only that every number is there and consistent.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

onnx = pytest.importorskip("onnx", reason="bench peak builds its graphs with onnx")

from defectd.daemon.cli import main  # noqa: E402
from defectd.engines.benchmarks.peak import (  # noqa: E402
    PRECISIONS,
    ConvShape,
    GemmShape,
    Kernel,
    PeakResult,
    build_conv,
    build_gemm,
    cpu_facts,
    format_markdown,
    measure_peak,
)
from defectd.engines.errors import InvalidSetting, MissingDependency  # noqa: E402

CONV = ConvShape(1, 16, 16, 16, 16)
GEMM = GemmShape(64, 64, 64)


def _measure(runtimes: tuple[str, ...] = ("onnxruntime",)) -> PeakResult:
    return measure_peak(1, 0.05, CONV, GEMM, runtimes)


def _run_ort(kernel: Kernel) -> npt.NDArray[np.float32]:
    import onnxruntime as ort

    session = ort.InferenceSession(kernel.model, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": kernel.x})[0])


def _reference(kernel: Kernel) -> npt.NDArray[np.float64]:
    """The FP32 kernel's output computed in numpy from its own weights."""
    model = onnx.load_from_string(kernel.model)
    w = onnx.numpy_helper.to_array(model.graph.initializer[0]).astype(np.float64)
    x = kernel.x.astype(np.float64)
    if kernel.name == "gemm":
        return x @ w
    windows = np.lib.stride_tricks.sliding_window_view(
        np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), axis=(2, 3)
    )  # N×C×H×W×3×3
    return np.einsum("nchwij,ocij->nohw", windows, w)


def test_figures_are_consistent_and_the_peaks_are_their_maxima() -> None:
    result = _measure()
    assert result.skipped == () and result.threads == 1
    assert {(f.kernel, f.precision) for f in result.figures} == {
        (k, p) for k in ("conv", "gemm") for p in PRECISIONS
    }
    ops = {"conv": CONV.ops, "gemm": GEMM.ops}
    for f in result.figures:
        assert f.runtime == "onnxruntime" and f.median_s > 0 and f.gops > 0
        assert f.gops == pytest.approx(ops[f.kernel] / f.median_s / 1e9, rel=1e-9)
    assert result.fp32_gops == max(f.gops for f in result.figures if f.precision == "fp32")
    assert result.int8_gops == max(f.gops for f in result.figures if f.precision == "int8")
    assert result.int8_over_fp32 == pytest.approx(result.int8_gops / result.fp32_gops)
    record = result.to_dict()
    assert json.loads(json.dumps(record)) == record
    assert record["int8_gops"] == result.int8_gops and len(record["figures"]) == 4
    table = format_markdown(result, "Machine: test")
    assert table.startswith("Machine: test") and table.count("| onnxruntime |") == 4
    assert "Measured peak on 1 thread(s)" in table


def test_onnxruntime_fuses_the_qdq_graphs_into_int8_kernels() -> None:
    ran_as = {(f.kernel, f.precision): f.ran_as for f in _measure().figures}
    assert ran_as[("conv", "int8")] == "QLinearConv"
    assert ran_as[("gemm", "int8")] == "QLinearMatMul"
    assert ran_as[("gemm", "fp32")] == "MatMul"


@pytest.mark.parametrize("build", [lambda p: build_conv(CONV, p), lambda p: build_gemm(GEMM, p)])
def test_int8_graph_computes_the_fp32_result(build: Callable[[str], Kernel]) -> None:
    fp32, int8 = (build(p) for p in PRECISIONS)
    assert np.array_equal(fp32.x, int8.x)
    expected = _reference(fp32)
    assert expected.std() > 0.2  # a real convolution / GEMM, not a constant
    np.testing.assert_allclose(_run_ort(fp32), expected, atol=1e-4)
    int8_out = _run_ort(int8)
    assert np.abs(int8_out - expected).max() < 0.03  # quantization error only
    assert np.corrcoef(int8_out.ravel(), expected.ravel())[0, 1] > 0.999


def test_a_missing_runtime_is_recorded_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino → ImportError
    result = _measure(("onnxruntime", "openvino"))
    assert {f.runtime for f in result.figures} == {"onnxruntime"}
    assert len(result.skipped) == 1 and result.skipped[0].startswith("openvino: ")
    assert "pip install" in result.skipped[0] and "Skipped: openvino" in format_markdown(result)


def test_openvino_runs_the_int8_graphs_in_int8() -> None:
    pytest.importorskip("openvino", reason="OpenVINO is optional (pip install 'defectd[openvino]')")
    result = _measure(("openvino",))
    assert result.skipped == () and len(result.figures) == 4
    for f in result.figures:
        assert f.gops > 0 and f.ran_as.endswith("u8" if f.precision == "int8" else "f32")


def test_missing_onnx_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(MissingDependency, match=r"pip install 'defectd\[int8\]'"):
        build_conv(CONV, "fp32")


def test_bad_settings_name_the_choice() -> None:
    with pytest.raises(InvalidSetting, match="choose from"):
        measure_peak(1, 0.05, CONV, GEMM, ("tensorrt",))
    with pytest.raises(InvalidSetting, match="at least 1"):
        measure_peak(0, 0.05, CONV, GEMM)


def test_cpu_facts_reads_name_and_flags(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: sse avx2 amx_int8\n")
    assert cpu_facts(cpuinfo) == ("Test CPU", ("avx2", "amx_int8"))
    assert cpu_facts(tmp_path / "absent") == ("", ())


def test_cli_prints_the_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "peak.json"
    argv = ["bench", "peak", "--threads", "1", "--seconds", "0.05", "--no-openvino"]
    argv += ["--conv", "1,16,16,16", "--gemm", "64,64,64", "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Command: `defectd bench peak" in printed and "| QLinearConv |" in printed
    record = json.loads(out.read_text())
    assert record["suite"] == "peak" and record["peak"]["conv"]["channels_in"] == 16
    assert record["peak"]["fp32_gops"] > 0 and len(record["peak"]["figures"]) == 4
    assert main([*argv[:2], "--seconds", "0"]) == 2  # a UserError: one line, status 2
    with pytest.raises(SystemExit, match="2"):
        main([*argv[:2], "--conv", "1,16,16"])  # argparse: usage and status 2
