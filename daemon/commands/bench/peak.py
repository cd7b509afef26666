"""`defectd bench peak`: this machine's measured FP32 and INT8 throughput (conv and GEMM)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from defectd.daemon.commands.bench.record import add_common, positive, report


def dimensions(count: int, example: str) -> Callable[[str], tuple[int, ...]]:
    """An argparse type for `count` positive whole numbers separated by commas."""

    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(part) for part in text.split(","))
        except ValueError:
            values = ()
        if len(values) != count or min(values) < 1:
            raise argparse.ArgumentTypeError(
                f"takes {count} positive whole numbers separated by commas, e.g. {example}; "
                f"got {text!r}"
            )
        return values

    return parse


def register(suites: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the peak suite."""
    parser = suites.add_parser(
        "peak",
        help="measured FP32 and INT8 peak of this CPU (conv and GEMM, ~10 s)",
        description="Time a 3×3 convolution and a GEMM in FP32 and in INT8 (QDQ) on ONNX "
        "Runtime and OpenVINO; the best figure of each precision is the measured peak that "
        "engine figures can be stated as a share of. Records the CPU's name and ISA flags; "
        "states no theoretical peak.",
    )
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument(
        "--seconds",
        type=float,
        default=1.0,
        help="timed seconds per kernel, precision and runtime (default 1)",
    )
    parser.add_argument(
        "--no-openvino", action="store_true", help="ONNX Runtime only (even if OpenVINO is here)"
    )
    parser.add_argument(
        "--conv",
        type=dimensions(4, "1,128,64,64"),
        default=(1, 128, 64, 64),
        metavar="N,C,H,W",
        help="convolution input; C channels in and out (default 1,128,64,64)",
    )
    parser.add_argument(
        "--gemm",
        type=dimensions(3, "1024,1024,1024"),
        default=(1024, 1024, 1024),
        metavar="M,K,N",
        help="GEMM of M×K by K×N (default 1024,1024,1024)",
    )
    add_common(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Measure the peaks and print their markdown block."""
    from defectd.engines.benchmarks.peak import (
        RUNTIMES,
        ConvShape,
        GemmShape,
        format_markdown,
        measure_peak,
    )

    positive("--threads", args.threads)
    positive("--seconds", args.seconds)
    batch, channels, height, width = args.conv
    result = measure_peak(
        threads=args.threads,
        seconds=args.seconds,
        conv_shape=ConvShape(batch, channels, channels, height, width),
        gemm_shape=GemmShape(*args.gemm),
        runtimes=("onnxruntime",) if args.no_openvino else RUNTIMES,
    )
    report(args, [format_markdown(result)], {"peak": result.to_dict()})
    return 0
