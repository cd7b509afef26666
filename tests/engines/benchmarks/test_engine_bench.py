"""`bench engine` on real (tiny) engines: result structure, files written, naive-loop parity.

Timings are never judged; only that every number is there and consistent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from defectd.engines.backends.onnxruntime_backend import OnnxRuntimeEngine
from defectd.engines.benchmarks.engine import (
    EngineBenchResult,
    fp16_peak_tflops,
    run_engine_bench,
    summarise_batch,
    synthetic_frames,
)
from defectd.engines.benchmarks.engine_report import format_markdown
from defectd.engines.benchmarks.naive import (
    float_input_onnx,
    fold_to_grey,
    notebook_preprocess,
    onnxruntime_runner,
    torch_runner,
)
from defectd.engines.errors import InvalidInput
from defectd.engines.model_card import read_card


def _check_batches(result: EngineBenchResult, sizes: list[int]) -> None:
    assert [b.batch for b in result.batches] == sizes
    for b in result.batches:
        assert b.calls >= 1 and b.frames_per_s > 0 and b.end_to_end_frames_per_s > 0
        assert 0 < b.p50_ms <= b.p90_ms <= b.p99_ms
        assert b.end_to_end_frames_per_s <= b.frames_per_s and b.post_ms_per_frame >= 0


def test_onnxruntime_bench_writes_json_and_plot(tiny_model: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    json_out, plot = tmp_path / "engine.json", tmp_path / "engine.png"
    result = run_engine_bench(
        tiny_model,
        "onnxruntime",
        [2, 1],
        seconds=0.2,
        threads=1,
        distinct_frames=3,
        json_out=json_out,
        plot=plot,
        progress=False,
    )
    assert (result.backend, result.device, result.precision) == ("onnxruntime", "cpu", "fp32")
    _check_batches(result, [1, 2])
    assert result.gflops_per_frame and result.gflops_per_frame > 0
    assert all(b.tflops and b.tflops > 0 for b in result.batches)
    assert result.fp16_peak_tflops is None and result.batches[0].fp16_peak_share is None
    assert result.naive is not None and result.naive.frames >= 1
    assert result.speedup == pytest.approx(
        result.best.end_to_end_frames_per_s / result.naive.frames_per_s
    )
    record = json.loads(json_out.read_text())
    assert record["backend"] == "onnxruntime" and record["speedup"] == result.speedup
    assert [b["batch"] for b in record["batches"]] == [1, 2] and "p99_ms" in record["naive"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = format_markdown(result)
    assert "| 1 |" in table and "| 2 |" in table and "Naive notebook loop" in table


def test_null_backend_has_no_flops_and_no_naive_loop(tiny_model: Path) -> None:
    result = run_engine_bench(tiny_model, "null", [1, 3], seconds=0.05, progress=False)
    _check_batches(result, [1, 3])
    assert result.gflops_per_frame is None and result.batches[0].tflops is None
    assert result.naive is None and result.speedup is None
    assert any("null backend" in note for note in result.notes)


def test_torch_backend_on_the_cpu(tiny_model: Path) -> None:
    pytest.importorskip("torch")
    result = run_engine_bench(
        tiny_model, "torch", [1], seconds=0.1, threads=1, device="cpu", progress=False
    )
    assert result.backend == "torch" and result.device == "cpu"
    _check_batches(result, [1])
    assert result.naive is not None


def test_naive_inputs_give_the_uint8_models_probabilities(tiny_model: Path) -> None:
    card = read_card(tiny_model)
    frame = synthetic_frames(card, 1, seed=5)
    reference = OnnxRuntimeEngine.from_card(card, threads=1).infer(frame)
    floats = fold_to_grey(notebook_preprocess(frame[0]))
    assert floats.shape == (1, 1, card.input.height, card.input.width)
    assert floats.dtype == np.float32
    np.testing.assert_allclose(floats[0, 0], frame[0], atol=1e-3)
    with onnxruntime_runner(card, "fp32", "cpu", 1) as run:
        probs, presence = run(floats)
    assert float(np.abs(probs - reference.probs).max()) <= 1e-4
    assert float(np.abs(presence - reference.presence).max()) <= 1e-4
    pytest.importorskip("torch")
    with torch_runner(card, "fp32", "cpu") as run:
        probs, presence = run(floats)
    assert float(np.abs(probs - reference.probs).max()) <= 1e-4


def test_float_input_onnx_keeps_an_fp16_cast(tiny_model: Path, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    card = read_card(tiny_model)
    for precision, cast_to in (("fp32", None), ("fp16", onnx.TensorProto.FLOAT16)):
        path = float_input_onnx(card.onnx_path(precision), tmp_path / f"{precision}.onnx")
        graph = onnx.load(str(path)).graph
        assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        first = [n for n in graph.node if graph.input[0].name in n.input]
        casts = [n for n in first if n.op_type == "Cast"]
        if cast_to is None:
            assert not casts
        else:
            assert [a.i for c in casts for a in c.attribute if a.name == "to"] == [cast_to]


def test_float_input_onnx_refuses_a_graph_without_an_input_cast(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    source = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph), str(source))
    with pytest.raises(ValueError, match="does not feed a Cast"):
        float_input_onnx(source, tmp_path / "out.onnx")


def test_summarise_batch_arithmetic() -> None:
    timing = summarise_batch(2, [0.1, 0.1], 0.1, gflops=5.0, peak_tflops=1.0)
    assert timing.frames_per_s == pytest.approx(20.0)
    assert timing.end_to_end_frames_per_s == pytest.approx(4 / 0.3)
    assert timing.post_ms_per_frame == pytest.approx(25.0)
    assert timing.tflops == pytest.approx(0.1) and timing.fp16_peak_share == pytest.approx(0.1)
    assert timing.p50_ms == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("name", "tflops"),
    [
        ("NVIDIA H100 80GB HBM3", 989.4),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H200", 989.4),
        ("NVIDIA H200 NVL", None),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA L40S", 362.0),
        ("NVIDIA L40", None),
        ("NVIDIA L4", 121.0),
        ("Tesla T4", 65.0),
        ("NVIDIA GeForce RTX 4090", None),
    ],
)
def test_fp16_peak_table(name: str, tflops: float | None) -> None:
    assert fp16_peak_tflops(name) == tflops


def test_bad_arguments(tiny_model: Path) -> None:
    with pytest.raises(ValueError, match="positive whole numbers"):
        run_engine_bench(tiny_model, "null", [0, 2], seconds=0.1, progress=False)
    with pytest.raises(ValueError, match="seconds must be positive"):
        run_engine_bench(tiny_model, "null", [1], seconds=0, progress=False)


def test_images_of_the_models_size_replace_the_synthetic_frames(
    tiny_model: Path, tiny_data: Path, tmp_path: Path
) -> None:
    folder = tiny_data / "train_images"
    result = run_engine_bench(tiny_model, "null", [2], seconds=0.05, progress=False, images=folder)
    assert result.frame_source == str(folder) and result.distinct_frames == 16
    assert f"frames from {folder}" in format_markdown(result)
    (tmp_path / "small.png").write_bytes(
        (folder / sorted(p.name for p in folder.iterdir())[0]).read_bytes()[:10]
    )
    with pytest.raises(InvalidInput, match="no image of the model's 1600×256 input"):
        run_engine_bench(tiny_model, "null", [1], seconds=0.05, progress=False, images=tmp_path)
