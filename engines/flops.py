"""FLOPs per frame of an ONNX model, counted from its graph (for TFLOP/s in `bench engine`).

The batch axis is fixed to 1 and ONNX shape inference (with data propagation, so the
decoder's Resize sizes resolve) gives every tensor's shape; where it cannot (shapes computed
in the graph, as the in-graph padding of models of other input sizes), ONNX Runtime's symbolic
shape inference does. Counted as 2 FLOPs per
multiply-accumulate (MAC):

- Conv: output elements × (Cin / groups) × kH × kW, read from the weight's shape
  Cout × Cin/groups × kH × kW; dilation changes where taps land, not how many;
- ConvTranspose: input elements × (Cout / groups) × kH × kW;
- MatMul: output elements × K; Gemm: M × N × K.

Biases are not counted: one add per output element, against Cin/groups × kH × kW MACs.
Everything else (activations, elementwise arithmetic, Resize, pooling, reductions) is summed
separately as ``other``, at one FLOP per output element (pooling: per window tap; reductions
and global pooling: per input element). That part is an estimate and is left out of TFLOP/s,
which counts the work tensor cores run.

``onnx`` is imported only when counting: it is in the ``train`` extra, not the runtime daemon.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defectd.engines.errors import InvalidInput, MissingDependency

ONNX_INSTALL_HINT = "counting FLOPs needs the onnx package: pip install onnx"
MATRIX_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
_POOLS = ("MaxPool", "AveragePool", "LpPool")
_REDUCTIONS = (
    *("ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd", "ReduceL2"),
    *("GlobalAveragePool", "GlobalMaxPool"),
)
_OTHER = (
    *("Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Neg", "Abs", "Max", "Min", "Clip", "Where"),
    *("Relu", "LeakyRelu", "PRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Erf"),
    *("Gelu", "Elu", "Selu", "Exp", "Log", "Softmax", "Resize", "Upsample"),
    *("BatchNormalization", "InstanceNormalization", "LayerNormalization"),
)


class OnnxNotInstalled(MissingDependency):
    """The optional onnx package is missing; the message says how to install it."""


def import_onnx() -> Any:
    """The onnx module, or OnnxNotInstalled naming the install command."""
    try:
        import onnx
    except ImportError as exc:
        raise OnnxNotInstalled(ONNX_INSTALL_HINT) from exc
    return onnx


@dataclass(frozen=True)
class FlopCount:
    """FLOPs of one frame (batch 1), in GFLOP (1e9)."""

    gflops: float  # Conv, ConvTranspose, MatMul, Gemm: 2 × MACs; what TFLOP/s uses
    other_gflops: float  # elementwise, Resize, pooling, reductions (estimate)
    by_op: dict[str, float] = field(default_factory=dict)  # op type → GFLOP, both kinds
    unresolved: tuple[str, ...] = ()  # counted nodes whose shapes inference left unknown


def count_flops(path: Path | str) -> FlopCount:
    """FLOPs per frame of the ONNX model at `path` (its first input's axis 0 is the batch)."""
    onnx = import_onnx()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ONNX file not found")
    model = onnx.load(str(path), load_external_data=False)  # shapes only: weights not needed
    return count_model_flops(model)


def count_model_flops(model: Any) -> FlopCount:
    """FLOPs per frame of an in-memory ``onnx.ModelProto`` (the caller's copy is not changed).

    A dynamic batch axis is fixed to 1; a static batch of B frames is counted and divided by B.
    """
    onnx = import_onnx()
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    # Only the first input is the frames; later inputs may be weights (old IR versions).
    first = fixed.graph.input[0]
    if not first.type.tensor_type.shape.dim:
        raise InvalidInput(f"input {first.name!r} has no shape: expected a batch axis first")
    batch_dim = first.type.tensor_type.shape.dim[0]
    frames = batch_dim.dim_value if batch_dim.HasField("dim_value") else 0
    if frames < 1:
        batch_dim.Clear()
        batch_dim.dim_value = frames = 1
    inferred = onnx.shape_inference.infer_shapes(fixed, data_prop=True)
    if _unresolved(inferred, onnx):
        # Shapes computed in the graph (the padding of models of other sizes to the network's
        # stride) defeat ONNX's inference; ONNX Runtime's symbolic inference folds them.
        inferred = _symbolic(fixed) or inferred
    shapes = _shapes(inferred.graph)
    by_op: dict[str, float] = defaultdict(float)
    unresolved: list[str] = []
    for node in inferred.graph.node:
        flops = _node_flops(node, shapes, onnx.helper.get_attribute_value)
        if flops is None:
            if node.op_type in MATRIX_OPS:
                unresolved.append(node.name or node.output[0])
            continue
        if flops:
            by_op[node.op_type] += flops / frames / 1e9
    matrix = sum(v for k, v in by_op.items() if k in MATRIX_OPS)
    other = sum(v for k, v in by_op.items() if k not in MATRIX_OPS)
    return FlopCount(matrix, other, dict(by_op), tuple(unresolved))


def _unresolved(model: Any, onnx: Any) -> bool:
    shapes = _shapes(model.graph)
    return any(
        node.op_type in MATRIX_OPS
        and _node_flops(node, shapes, onnx.helper.get_attribute_value) is None
        for node in model.graph.node
    )


def _symbolic(model: Any) -> Any | None:
    """`model` with ONNX Runtime's symbolic shape inference, or None when it fails."""
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        return SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    except Exception:  # an inference that gives up leaves the first, partial answer
        return None


def _shapes(graph: Any) -> dict[str, tuple[int, ...] | None]:
    """Name → static shape (None where a dimension is unknown) of every typed value."""
    shapes: dict[str, tuple[int, ...] | None] = {}
    for value in (*graph.input, *graph.value_info, *graph.output):
        dims = value.type.tensor_type.shape.dim
        known = all(d.HasField("dim_value") and d.dim_value > 0 for d in dims)
        shapes[value.name] = tuple(d.dim_value for d in dims) if known else None
    for tensor in graph.initializer:
        shapes[tensor.name] = tuple(tensor.dims)
    return shapes


def _node_flops(
    node: Any, shapes: dict[str, tuple[int, ...] | None], attribute: Any
) -> float | None:
    """FLOPs of one node, 0 for ops not counted, None when a needed shape is unknown."""
    attrs = {a.name: attribute(a) for a in node.attribute}
    op = node.op_type
    if op not in (*MATRIX_OPS, *_POOLS, *_REDUCTIONS, *_OTHER):
        return 0.0  # shape plumbing, casts, concat, slicing: no arithmetic

    def shape(index: int, outputs: bool = False) -> tuple[int, ...] | None:
        names = node.output if outputs else node.input
        return shapes.get(names[index]) if index < len(names) and names[index] else None

    out = shape(0, outputs=True)
    if op in ("Conv", "ConvTranspose"):
        weight = shape(1)
        source = out if op == "Conv" else shape(0)
        if weight is None or source is None:
            return None
        return 2.0 * math.prod(source) * math.prod(weight[1:])
    if op == "MatMul":
        left = shape(0)
        if left is None or out is None:
            return None
        return 2.0 * math.prod(out) * left[-1]
    if op == "Gemm":
        left = shape(0)
        if left is None or out is None:
            return None
        k = left[0] if attrs.get("transA", 0) else left[1]
        return 2.0 * math.prod(out) * k
    if op in _REDUCTIONS:
        source = shape(0)
        return None if source is None else float(math.prod(source))
    if out is None:
        return None
    if op in _POOLS:
        return float(math.prod(out) * math.prod(attrs.get("kernel_shape", [1])))
    return float(math.prod(out))
