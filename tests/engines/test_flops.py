"""FLOPs from the ONNX graph: exact on hand-built graphs, equal to torch's count on a model."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="counting FLOPs needs onnx (defectd[train])")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from defectd.engines.flops import OnnxNotInstalled, count_flops, count_model_flops  # noqa: E402


def _weight(name: str, *shape: int) -> Any:
    return numpy_helper.from_array(np.zeros(shape, np.float32), name)


def _model(nodes: list[Any], weights: list[Any], input_shape: list[Any], out: str) -> Any:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
        initializer=weights,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_one_conv_counts_two_flops_per_mac() -> None:
    # 3→8 channels, 3×3, stride 2, pad 1: 32×48 → 16×24 outputs.
    conv = helper.make_node(
        "Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]
    )
    model = _model([conv], [_weight("w", 8, 3, 3, 3), _weight("b", 8)], ["N", 3, 32, 48], "y")
    count = count_model_flops(model)
    assert count.gflops * 1e9 == pytest.approx(2 * (8 * 16 * 24) * (3 * 3 * 3), rel=1e-12)
    assert count.other_gflops == 0.0 and count.unresolved == ()


def test_groups_dilation_transpose_gemm_and_other_ops() -> None:
    nodes = [
        # grouped: 8→8 channels in 2 groups, each output sees 4 input channels
        helper.make_node("Conv", ["x", "wg"], ["g"], kernel_shape=[3, 3], pads=[1] * 4, group=2),
        # dilated: same taps per output as undilated
        helper.make_node(
            "Conv", ["g", "wd"], ["d"], kernel_shape=[3, 3], pads=[2] * 4, dilations=[2, 2]
        ),
        helper.make_node("Relu", ["d"], ["r"]),
        # transpose: 8→2 channels, 2×2 stride 2: 16×24 → 32×48
        helper.make_node("ConvTranspose", ["r", "wt"], ["t"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "wm"], ["m"], transB=1),
        helper.make_node("MatMul", ["f", "wk"], ["k"]),
    ]
    weights = [
        _weight("wg", 8, 4, 3, 3),
        _weight("wd", 8, 8, 3, 3),
        _weight("wt", 8, 2, 2, 2),
        _weight("wm", 5, 8),
        _weight("wk", 8, 6),
    ]
    model = _model(nodes, weights, ["N", 8, 16, 24], "m")
    model.graph.output.append(helper.make_tensor_value_info("t", TensorProto.FLOAT, None))
    model.graph.output.append(helper.make_tensor_value_info("k", TensorProto.FLOAT, None))
    by_op = {k: v * 1e9 for k, v in count_model_flops(model).by_op.items()}
    pixels = 16 * 24
    assert by_op["Conv"] == pytest.approx(2 * 8 * pixels * (4 * 9) + 2 * 8 * pixels * (8 * 9))
    assert by_op["ConvTranspose"] == pytest.approx(2 * (8 * pixels) * (2 * 2 * 2))
    assert by_op["Gemm"] == pytest.approx(2 * 5 * 8)
    assert by_op["MatMul"] == pytest.approx(2 * 6 * 8)
    assert by_op["Relu"] == pytest.approx(8 * pixels)
    assert by_op["GlobalAveragePool"] == pytest.approx(8 * pixels)  # reads every input
    assert "Flatten" not in by_op


def test_a_static_batch_is_divided_out() -> None:
    conv = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1])
    one = count_model_flops(_model([conv], [_weight("w", 4, 2, 1, 1)], [1, 2, 8, 8], "y"))
    four = count_model_flops(_model([conv], [_weight("w", 4, 2, 1, 1)], [4, 2, 8, 8], "y"))
    assert one.gflops == pytest.approx(four.gflops) == pytest.approx(2 * 4 * 64 * 2 / 1e9)


@pytest.mark.filterwarnings("ignore:.*torch.jit.load.*:DeprecationWarning")
def test_tiny_model_matches_torch_flop_counter(tiny_model: Path) -> None:
    from defectd.engines.model_card import read_card

    card = read_card(tiny_model)
    count = count_flops(card.onnx_path("fp32"))
    assert count.gflops > 0 and count.other_gflops > 0 and count.unresolved == ()
    assert {"Conv", "Gemm"} <= set(count.by_op)
    assert count_flops(card.onnx_path("fp16")).gflops == pytest.approx(count.gflops)

    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    module = torch.jit.load(str(card.file_path("torch")))
    frame = torch.zeros((1, 1, card.input.height, card.input.width), dtype=torch.uint8)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        module(frame)
    assert count.gflops * 1e9 == pytest.approx(counter.get_total_flops(), rel=1e-6)


def test_missing_onnx_names_the_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(OnnxNotInstalled, match="pip install onnx"):
        count_flops(tmp_path / "model.onnx")


def test_padding_computed_in_the_graph_is_resolved() -> None:
    """A 30×30 input padded up to 32×32 by pads computed from its shape (as export does for
    models whose input is not a multiple of the stride), then a 3×3 conv 1 → 8."""
    ints = lambda name, values: numpy_helper.from_array(np.asarray(values, np.int64), name)  # noqa: E731
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Slice", ["shape", "two", "four"], ["hw"]),
        helper.make_node("Sub", ["target", "hw"], ["missing"]),
        helper.make_node("Concat", ["zeros4", "missing"], ["pads"], axis=0),
        helper.make_node("Pad", ["x", "pads"], ["padded"]),
        helper.make_node("Conv", ["padded", "w"], ["y"], pads=[1, 1, 1, 1]),
    ]
    weights = [
        ints("two", [2]), ints("four", [4]), ints("target", [32, 32]),
        ints("zeros4", [0, 0, 0, 0, 0, 0]), _weight("w", 8, 1, 3, 3),
    ]  # fmt: skip
    model = _model(nodes, weights, ["N", 1, 30, 30], "y")
    count = count_model_flops(model)
    assert count.unresolved == ()
    assert count.gflops == pytest.approx(2 * 32 * 32 * 8 * 9 / 1e9)
