"""`defectd bench peak`: the FP32 and INT8 throughput this machine achieves, measured.

Engine benchmarks state TFLOP/s; this suite gives the figure to divide them by. It times two
small kernels that CPU runtimes implement at their best — a 3×3 convolution and a square GEMM
— in FP32 and in INT8, on ONNX Runtime and (when installed) OpenVINO, and takes the best of
each precision as the measured peak. No theoretical peak is computed: clocks and execution
units are not readable here, so only the CPU's name and ISA flags are recorded beside it.

The INT8 graphs are QDQ graphs, as `defectd quantize` writes them: a float input through
QuantizeLinear → DequantizeLinear (uint8), int8 per-channel weights through DequantizeLinear,
the Conv or MatMul, then QuantizeLinear → DequantizeLinear on the output. Each figure records
the op the runtime actually ran (ONNX Runtime's optimized graph, OpenVINO's runtime model), so
a table row saying INT8 is an INT8 kernel (QLinearConv, QLinearMatMul, or u8 in OpenVINO) and
not a float fallback.
"""

from __future__ import annotations

import importlib
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from defectd.engines.errors import InvalidSetting, MissingDependency

RUNTIMES = ("onnxruntime", "openvino")
PRECISIONS = ("fp32", "int8")
ONNX_HINT = (
    "bench peak builds its graphs with the onnx package, which is not installed: "
    "pip install 'defectd[int8]' (the onnx package)"
)
OPENVINO_HINT = "openvino is not installed (pip install 'defectd[openvino]')"
# Flags that decide FP32/INT8/BF16 throughput on x86; recorded when /proc/cpuinfo has them.
FLAGS_OF_INTEREST = (
    *("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni"),
    *("avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8"),
)
OPSET = 17
Floats = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ConvShape:
    """A 3×3 convolution, stride 1, padding 1: N×C_in×H×W in, N×C_out×H×W out."""

    batch: int = 1
    channels_in: int = 128
    channels_out: int = 128
    height: int = 64
    width: int = 64

    @property
    def ops(self) -> int:
        """Multiply-adds × 2."""
        return 2 * self.batch * self.channels_out * self.height * self.width * self.channels_in * 9

    def label(self) -> str:
        return (
            f"conv3x3 {self.batch}×{self.channels_in}×{self.height}×{self.width}"
            f" → {self.channels_out}"
        )


@dataclass(frozen=True)
class GemmShape:
    """MatMul of an M×K activation by a K×N weight."""

    m: int = 1024
    k: int = 1024
    n: int = 1024

    @property
    def ops(self) -> int:
        """Multiply-adds × 2."""
        return 2 * self.m * self.n * self.k

    def label(self) -> str:
        return f"gemm {self.m}×{self.k}×{self.n}"


@dataclass(frozen=True)
class Kernel:
    """One graph to time: its serialized ONNX, one input, and its operation count."""

    name: str  # "conv" or "gemm"
    precision: str  # "fp32" or "int8"
    ops: int
    model: bytes
    x: Floats


@dataclass(frozen=True)
class KernelFigure:
    """One kernel at one precision on one runtime: median time per run and G(FL)OP/s."""

    kernel: str
    precision: str
    runtime: str
    median_s: float
    gops: float  # GFLOP/s for fp32, GOP/s for int8 (1e9 per second)
    ran_as: str = ""  # the op the runtime executed, e.g. "QLinearConv" or "Convolution u8"


@dataclass(frozen=True)
class PeakResult:
    """All figures of one `bench peak` run; the best of each precision is the measured peak."""

    threads: int
    figures: tuple[KernelFigure, ...]
    skipped: tuple[str, ...] = ()  # "runtime: why", one per runtime not measured
    cpu: str = ""
    flags: tuple[str, ...] = ()  # of FLAGS_OF_INTEREST, those the CPU reports
    conv: ConvShape = ConvShape()
    gemm: GemmShape = GemmShape()

    def best(self, precision: str) -> KernelFigure | None:
        """The fastest figure of `precision`, over kernels and runtimes."""
        figures = [f for f in self.figures if f.precision == precision]
        return max(figures, key=lambda f: f.gops) if figures else None

    @property
    def fp32_gops(self) -> float | None:
        """Measured FP32 peak, GFLOP/s."""
        best = self.best("fp32")
        return best.gops if best else None

    @property
    def int8_gops(self) -> float | None:
        """Measured INT8 peak, GOP/s."""
        best = self.best("int8")
        return best.gops if best else None

    @property
    def int8_over_fp32(self) -> float | None:
        """INT8 peak / FP32 peak."""
        fp32, int8 = self.fp32_gops, self.int8_gops
        return int8 / fp32 if fp32 and int8 else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-native (lists, not tuples): the fields, the shapes' labels, and the peaks."""
        record = asdict(self)
        record |= {
            "figures": [asdict(f) for f in self.figures],
            "skipped": list(self.skipped),
            "flags": list(self.flags),
            "conv": {**record["conv"], "label": self.conv.label()},
            "gemm": {**record["gemm"], "label": self.gemm.label()},
            "fp32_gops": self.fp32_gops,
            "int8_gops": self.int8_gops,
            "int8_over_fp32": self.int8_over_fp32,
        }
        return record


def measure_peak(
    threads: int = 2,
    seconds: float = 1.0,
    conv_shape: ConvShape = ConvShape(),
    gemm_shape: GemmShape = GemmShape(),
    runtimes: Sequence[str] = RUNTIMES,
    cpuinfo: Path = Path("/proc/cpuinfo"),
) -> PeakResult:
    """Time conv and GEMM in FP32 and INT8 on each runtime for about `seconds` each."""
    if threads < 1:
        raise InvalidSetting(f"bench peak threads must be at least 1, got {threads}")
    if not seconds > 0:
        raise InvalidSetting(f"bench peak seconds must be positive, got {seconds:g}")
    unknown = sorted(set(runtimes) - set(RUNTIMES))
    if unknown:
        raise InvalidSetting(f"bench peak runtimes {unknown}: choose from {list(RUNTIMES)}")
    for shape in (conv_shape, gemm_shape):
        if min(asdict(shape).values()) < 1:
            raise InvalidSetting(f"bench peak shape {shape}: every dimension must be positive")
    kernels = [build_conv(conv_shape, p) for p in PRECISIONS]
    kernels += [build_gemm(gemm_shape, p) for p in PRECISIONS]
    figures: list[KernelFigure] = []
    skipped: list[str] = []
    for runtime in runtimes:
        why = runtime_missing(runtime)
        if why:
            skipped.append(f"{runtime}: {why}")
            continue
        for kernel in kernels:
            run, ran_as = _open(runtime, kernel, threads)
            median_s = statistics.median(time_runs(run, seconds))
            gops = kernel.ops / median_s / 1e9
            figures.append(
                KernelFigure(kernel.name, kernel.precision, runtime, median_s, gops, ran_as)
            )
    cpu, flags = cpu_facts(cpuinfo)
    return PeakResult(threads, tuple(figures), tuple(skipped), cpu, flags, conv_shape, gemm_shape)


def time_runs(run: Callable[[], object], seconds: float) -> list[float]:
    """Seconds per call of `run`: warm up for a fifth of `seconds`, then time for `seconds`.

    At least 2 warm-up and 5 timed calls, however long one call takes.
    """
    calls, start = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - start < seconds / 5:
        run()
        calls += 1
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 5 or time.perf_counter() - start < seconds:
        begin = time.perf_counter()
        run()
        times.append(time.perf_counter() - begin)
    return times


def runtime_missing(runtime: str) -> str | None:
    """None when `runtime` can be imported, else why not (with the install command)."""
    try:
        importlib.import_module(runtime)
    except ImportError:
        return OPENVINO_HINT if runtime == "openvino" else "pip install onnxruntime"
    return None


def cpu_facts(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, tuple[str, ...]]:
    """The CPU's model name and which of FLAGS_OF_INTEREST it has ("", () when unreadable)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "", ()
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())  # the first processor's entry
    present = set(fields.get("flags", "").split())
    return fields.get("model name", ""), tuple(f for f in FLAGS_OF_INTEREST if f in present)


# --- graphs -------------------------------------------------------------------------------


def build_conv(shape: ConvShape, precision: str, seed: int = 0) -> Kernel:
    """The 3×3 convolution as ONNX, FP32 or QDQ INT8; the same weights and input either way."""
    rng = np.random.default_rng(seed)
    fan_in = shape.channels_in * 9
    limit = 1 / np.sqrt(fan_in)  # output std ≈ 1/3 for inputs in [-1, 1]
    weights = rng.uniform(-limit, limit, (shape.channels_out, shape.channels_in, 3, 3))
    x = rng.uniform(-1, 1, (shape.batch, shape.channels_in, shape.height, shape.width))
    node = ("Conv", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [1, 1]})
    out = [shape.batch, shape.channels_out, shape.height, shape.width]
    model = _graph(node, x.shape, out, weights.astype(np.float32), precision, channel_axis=0)
    return Kernel("conv", precision, shape.ops, model, x.astype(np.float32))


def build_gemm(shape: GemmShape, precision: str, seed: int = 0) -> Kernel:
    """The M×K by K×N MatMul as ONNX, FP32 or QDQ INT8; the same weights and input either way."""
    rng = np.random.default_rng(seed)
    limit = 1 / np.sqrt(shape.k)
    weights = rng.uniform(-limit, limit, (shape.k, shape.n))
    x = rng.uniform(-1, 1, (shape.m, shape.k))
    model = _graph(
        ("MatMul", {}), x.shape, [shape.m, shape.n], weights.astype(np.float32), precision, 1
    )
    return Kernel("gemm", precision, shape.ops, model, x.astype(np.float32))


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise MissingDependency(ONNX_HINT) from None
    return onnx


def _graph(
    node: tuple[str, dict[str, Any]],
    in_shape: Sequence[int],
    out_shape: Sequence[int],
    weights: Floats,
    precision: str,
    channel_axis: int,
) -> bytes:
    """One-op graph x → op(x, W) → y; for int8 wrapped in Q/DQ pairs with per-channel W."""
    onnx = _onnx()
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    op, attributes = node
    if precision not in PRECISIONS:
        raise InvalidSetting(f"bench peak precision {precision!r}: choose from {PRECISIONS}")
    if precision == "fp32":
        nodes = [helper.make_node(op, ["x", "w"], ["y"], **attributes)]
        initializers = [numpy_helper.from_array(weights, "w")]
    else:
        # Per-channel symmetric int8 weights; uint8 activations in [-1, 1]; the output range
        # is ±6 standard deviations of the widest output channel, so nothing real clips.
        reduce = tuple(a for a in range(weights.ndim) if a != channel_axis)
        w_scale = np.maximum(np.abs(weights).max(axis=reduce), 1e-12) / 127
        expand = [1 if a != channel_axis else -1 for a in range(weights.ndim)]
        w_int8 = np.clip(np.round(weights / w_scale.reshape(expand)), -127, 127)
        y_std = float(np.sqrt((weights.astype(np.float64) ** 2).sum(axis=reduce).max() / 3))
        constants = {
            "w_q": w_int8.astype(np.int8),
            "w_scale": w_scale.astype(np.float32),
            "w_zero": np.zeros(w_scale.shape, np.int8),
            "x_scale": np.array(2 / 255, np.float32),
            "x_zero": np.array(128, np.uint8),
            "y_scale": np.array(12 * y_std / 255, np.float32),
            "y_zero": np.array(128, np.uint8),
        }
        initializers = [numpy_helper.from_array(v, k) for k, v in constants.items()]
        nodes = [
            helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["x_q"]),
            helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zero"], ["x_dq"]),
            helper.make_node(
                "DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w_dq"], axis=channel_axis
            ),
            helper.make_node(op, ["x_dq", "w_dq"], ["y_f"], **attributes),
            helper.make_node("QuantizeLinear", ["y_f", "y_scale", "y_zero"], ["y_q"]),
            helper.make_node("DequantizeLinear", ["y_q", "y_scale", "y_zero"], ["y"]),
        ]
    graph = helper.make_graph(
        nodes,
        f"peak_{op.lower()}_{precision}",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, list(out_shape))],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # readable by every onnxruntime and openvino this project supports
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


# --- runtimes -----------------------------------------------------------------------------

_COMPUTE_OPS = ("Conv", "MatMul", "Gemm", "Convolution", "FullyConnected")


def _open(runtime: str, kernel: Kernel, threads: int) -> tuple[Callable[[], object], str]:
    """A no-argument call running `kernel` once, and the compute op the runtime chose."""
    if runtime == "openvino":
        return _openvino(kernel, threads)
    return _onnxruntime(kernel, threads)


def _onnxruntime(kernel: Kernel, threads: int) -> tuple[Callable[[], object], str]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # saving an NCHWc-optimized graph warns; it is only read
    with tempfile.TemporaryDirectory(prefix="defectd-peak-") as folder:
        optimized = Path(folder) / "optimized.onnx"
        options.optimized_model_filepath = str(optimized)
        session = ort.InferenceSession(kernel.model, options, providers=["CPUExecutionProvider"])
        ops = [n.op_type for n in _onnx().load(str(optimized)).graph.node]
    ran_as = next((op for op in ops if any(c in op for c in _COMPUTE_OPS)), "+".join(ops))
    feed = {"x": kernel.x}
    return lambda: session.run(None, feed), ran_as


def _openvino(kernel: Kernel, threads: int) -> tuple[Callable[[], object], str]:
    core = importlib.import_module("openvino").Core()  # untyped: no stubs, no py.typed
    settings = {
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
        # Without it, CPUs with bfloat16 run the "FP32" graphs in bf16.
        "INFERENCE_PRECISION_HINT": "f32",
    }
    compiled = core.compile_model(core.read_model(kernel.model), "CPU", settings)
    ran_as = ""
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        layer = info["layerType"].astype(str)
        if layer in _COMPUTE_OPS:
            ran_as = f"{layer} {info['runtimePrecision'].astype(str)}"
            break
    request = compiled.create_infer_request()
    x = kernel.x
    return lambda: request.infer({0: x}), ran_as


# --- report -------------------------------------------------------------------------------


def format_markdown(result: PeakResult, machine_line: str | None = None) -> str:
    """The figures as a markdown table, then the measured peaks and the CPU's facts."""
    labels = {"conv": result.conv.label(), "gemm": result.gemm.label()}
    lines = [machine_line, ""] if machine_line else []
    lines += [
        "| kernel | precision | runtime | ran as | median ms | GFLOP/s or GOP/s |",
        "|---|---|---|---|---:|---:|",
    ]
    for f in result.figures:
        unit = "GFLOP/s" if f.precision == "fp32" else "GOP/s"
        lines.append(
            f"| {labels.get(f.kernel, f.kernel)} | {f.precision} | {f.runtime} | {f.ran_as} "
            f"| {f.median_s * 1e3:.3f} | {f.gops:.1f} {unit} |"
        )
    lines.append("")
    fp32, int8 = result.best("fp32"), result.best("int8")
    if fp32 and int8:
        lines.append(
            f"Measured peak on {result.threads} thread(s): FP32 **{fp32.gops:.1f} GFLOP/s** "
            f"({fp32.kernel}, {fp32.runtime}), INT8 **{int8.gops:.1f} GOP/s** ({int8.kernel}, "
            f"{int8.runtime}); INT8/FP32 = {result.int8_over_fp32:.2f}×."
        )
    else:
        lines.append("No peak: FP32 and INT8 were not both measured.")
    flags = " ".join(result.flags) or "none of interest"
    lines.append(
        f"\nCPU: {result.cpu or 'unknown'}; flags: {flags}. No theoretical peak is stated "
        "(clock and execution units are not read)."
    )
    if result.skipped:
        lines.append("\nSkipped: " + "; ".join(result.skipped) + ".")
    return "\n".join(lines)
