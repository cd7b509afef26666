"""`defectd bench engine`: the engine alone at each batch size (frames/s, p50/p99, TFLOP/s)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from defectd.daemon.commands.bench.record import add_common, positive, report
from defectd.daemon.commands.output import refuse_unused
from defectd.engines.engine import PRECISIONS
from defectd.engines.selection import CHOICES


def batch_sizes(text: str) -> list[int]:
    """--batch "1,2,4" → [1, 2, 4]; a clear argparse error for anything else."""
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"--batch takes positive whole numbers separated by commas, e.g. 1,2,4,8; got {text!r}"
        )
    return sorted(set(sizes))


def add_engine_options(parser: argparse.ArgumentParser, threads: int | None = 2) -> None:
    """--model, --backend, --threads: which engine a suite opens."""
    parser.add_argument("--model", type=Path, help="model directory (default: the bundled model)")
    parser.add_argument(
        "--backend",
        default="auto",
        choices=CHOICES,
        help="engine backend, as engine.backend in the daemon config (default auto)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=threads,
        help=f"CPU threads of ONNX Runtime / torch on the CPU (default {threads})",
    )


def register(suites: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the engine suite."""
    parser = suites.add_parser(
        "engine",
        help="the engine alone by batch size (minutes per backend)",
        description="Time the engine alone at each batch size: frames/s, p50/p99 latency, "
        "TFLOP/s from the ONNX FLOP count and the share of FP16 peak on known GPUs; then the "
        "naive Kaggle loop on the same backend.",
    )
    add_engine_options(parser)
    parser.add_argument(
        "--batch",
        type=batch_sizes,
        default=[1, 2, 4, 8, 16, 32],
        metavar="N,N,...",
        help="batch sizes to time (default 1,2,4,8,16,32); the engine opens with the largest",
    )
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="timed seconds per batch size (default 5)"
    )
    parser.add_argument(
        "--precision", choices=PRECISIONS, help="default: fp16 on a GPU, fp32 on the CPU"
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), help="default: cuda when the backend can use it"
    )
    parser.add_argument(
        "--images",
        type=Path,
        metavar="DIR",
        help="time on up to 16 images of the model's input size from DIR (e.g. its own data) "
        "instead of synthetic strip frames",
    )
    parser.add_argument("--plot", type=Path, help="write a PNG of frames/s and p99 by batch")
    parser.add_argument(
        "--side-by-side",
        action="store_true",
        help="every CPU engine of each --models model in one run (ONNX Runtime and OpenVINO "
        "FP32 and INT8, torch FP32), interleaved, with the machine's measured peak "
        "(`bench peak`) and each engine's share of it",
    )
    parser.add_argument(
        "--models",
        type=lambda text: [Path(p) for p in text.split(",") if p],
        metavar="DIR,DIR,...",
        help="--side-by-side: the models (default: every bundled model)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="--side-by-side: interleaved rounds, each --seconds / rounds per case (default 3)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_common(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Time the engine and print its markdown block."""
    from defectd.engines.benchmarks.engine import run_engine_bench
    from defectd.engines.benchmarks.engine_report import format_markdown
    from defectd.engines.model_card import default_model_dir

    positive("--seconds", args.seconds)
    positive("--threads", args.threads)
    if args.side_by_side:
        return _side_by_side(args)
    refuse_unused(
        ("--models", args.models is not None, False, "without --side-by-side"),
        ("--rounds", args.rounds != 3, False, "without --side-by-side"),
    )
    result = run_engine_bench(
        args.model or default_model_dir(),
        backend=args.backend,
        batches=args.batch,
        seconds=args.seconds,
        threads=args.threads,
        precision=args.precision,
        device=args.device,
        plot=args.plot,
        progress=not args.no_progress,
        images=args.images,
    )
    report(args, [format_markdown(result)], {"engine": result.to_dict()})
    return 0


def _side_by_side(args: argparse.Namespace) -> int:
    from defectd.engines.benchmarks import side_by_side
    from defectd.engines.model_card import bundled_model_dir, bundled_models

    refuse_unused(
        ("--model", args.model is not None, False, "with --side-by-side: use --models"),
        ("--backend", args.backend != "auto", False, "with --side-by-side (every CPU engine)"),
        ("--precision", args.precision is not None, False, "with --side-by-side"),
        ("--device", args.device not in (None, "cpu"), False, "with --side-by-side (CPU)"),
    )
    positive("--rounds", args.rounds)
    models = args.models or [bundled_model_dir(name) for name in bundled_models()]
    with tqdm(desc="bench side by side", unit="case", disable=args.no_progress) as bar:

        def step(text: str) -> None:
            bar.set_postfix_str(text[-60:])
            bar.update()

        result = side_by_side.run_side_by_side(
            models,
            batches=args.batch,
            seconds=args.seconds,
            rounds=args.rounds,
            threads=args.threads or 2,
            images=args.images,
            progress=step,
        )
    if args.plot is not None:
        side_by_side.plot(result, args.plot)
    report(args, [side_by_side.format_markdown(result)], {"side_by_side": result.to_dict()})
    return 0
