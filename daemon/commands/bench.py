"""`defectd bench`: micro-benchmarks that print (and optionally record) their numbers."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from defectd.engines.benchmarks import BenchResult, format_table, machine_summary
from defectd.engines.engine import PRECISIONS
from defectd.engines.selection import CHOICES

if TYPE_CHECKING:
    from defectd.daemon.tools.benchmarks.pipeline import PipelineBenchResult
    from defectd.daemon.tools.benchmarks.soak import SoakResult
    from defectd.engines.benchmarks.engine import EngineBenchResult

DEFAULT_SUITES = ("rle", "synth", "model", "postprocess")
# engine: minutes per backend; pipeline: the daemon on a simulated line; soak: the daemon for
# --minutes, watched for leaks. Run only when named.
SUITES = (*DEFAULT_SUITES, "engine", "pipeline", "soak")


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


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `bench` subcommand."""
    parser = subparsers.add_parser(
        "bench",
        help="micro-benchmarks (RLE, synthetic line, model, engine by batch size); markdown",
        description="Run micro-benchmarks. Medians of many repeats; compare within one run.",
    )
    parser.add_argument(
        "suites",
        nargs="*",
        default=list(DEFAULT_SUITES),
        metavar="SUITE",
        help=f"which to run: {', '.join(SUITES)} (default {', '.join(DEFAULT_SUITES)})",
    )
    parser.add_argument("--repeats", type=int, default=300, help="timed calls per case")
    parser.add_argument(
        "--labels", type=Path, help="a Severstal train.csv whose real masks become extra RLE cases"
    )
    parser.add_argument(
        "--model",
        type=Path,
        help="model directory for the model and engine suites (default: bundled)",
    )
    parser.add_argument(
        "--model-repeats", type=int, default=20, help="timed engine calls per model case"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="CPU threads for the model and engine suites (ONNX Runtime, torch on the CPU)",
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    engine = parser.add_argument_group("engine suite")
    engine.add_argument(
        "--backend",
        default="auto",
        choices=CHOICES,
        help="engine backend, as engine.backend in the daemon config (default auto)",
    )
    engine.add_argument(
        "--batch",
        type=batch_sizes,
        default=[1, 2, 4, 8, 16, 32],
        metavar="N,N,...",
        help="batch sizes to time (default 1,2,4,8,16,32); the engine opens with the largest",
    )
    engine.add_argument(
        "--seconds", type=float, default=5.0, help="timed seconds per batch size (default 5)"
    )
    engine.add_argument(
        "--precision", choices=PRECISIONS, help="default: fp16 on a GPU, fp32 on the CPU"
    )
    engine.add_argument(
        "--device", choices=("cpu", "cuda"), help="default: cuda when the backend can use it"
    )
    engine.add_argument("--json-out", type=Path, help="write the whole engine result as JSON")
    engine.add_argument(
        "--plot",
        type=Path,
        help="write a PNG: engine, frames/s and p99 latency; soak, RSS/fds/threads over time "
        "(with both suites the soak's gets a -soak suffix)",
    )
    engine.add_argument("--no-progress", action="store_true", help="no progress bar")
    pipeline = parser.add_argument_group(
        "pipeline suite (the daemon with the simulator; --backend, --threads, --model apply)"
    )
    pipeline.add_argument(
        "--pipeline-batch",
        type=int,
        default=8,
        metavar="N",
        help="engine batch of the real-engine runs and the bare engine (default 8)",
    )
    pipeline.add_argument(
        "--pipeline-null-batch",
        type=int,
        default=32,
        metavar="N",
        help="batch of the null-engine capacity run (default 32)",
    )
    pipeline.add_argument(
        "--pipeline-seconds",
        type=float,
        default=8.0,
        metavar="S",
        help="sending time of each run, and the bare engine's timing (default 8)",
    )
    pipeline.add_argument(
        "--pipeline-cameras", type=int, default=2, metavar="N", help="simulated cameras (2)"
    )
    pipeline.add_argument(
        "--pipeline-max-wait-ms",
        type=float,
        default=20.0,
        metavar="MS",
        help="batching.max_wait_ms of the daemon (default 20)",
    )
    pipeline.add_argument(
        "--pipeline-out",
        type=Path,
        default=Path("out/bench-pipeline"),
        help="configs and daemon logs (default out/bench-pipeline)",
    )
    soak = parser.add_argument_group(
        "soak suite (the daemon for minutes, sampled for leaks; --backend, --threads, --model, "
        "--plot apply; --backend auto means null here)"
    )
    soak.add_argument(
        "--minutes", type=float, default=10.0, help="measured minutes after warm-up (default 10)"
    )
    soak.add_argument(
        "--fps",
        type=float,
        help="frames/s offered, all cameras together (default: 80%% of the capacity measured "
        "first)",
    )
    soak.add_argument(
        "--soak-warmup-s",
        type=float,
        metavar="S",
        help="warm-up before the window (default: 20%% of the run, 10 to 60 s)",
    )
    soak.add_argument(
        "--soak-interval-s", type=float, default=5.0, metavar="S", help="sampling interval (5)"
    )
    soak.add_argument("--soak-batch", type=int, default=8, metavar="N", help="engine batch (8)")
    soak.add_argument(
        "--soak-out",
        type=Path,
        default=Path("out/bench-soak"),
        help="config and daemon log (default out/bench-soak)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the chosen suites and print a markdown block for docs/benchmarks.md."""
    if args.repeats < 1:
        raise ValueError("--repeats must be at least 1")
    unknown = sorted(set(args.suites) - set(SUITES))
    if unknown:
        raise ValueError(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    if args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    if args.seconds <= 0:
        raise ValueError(f"--seconds must be positive, got {args.seconds:g}")
    results: list[BenchResult] = []
    engine_result = None
    pipeline_result = None
    soak_result = None
    for suite in args.suites:
        if suite == "rle":
            from defectd.engines.benchmarks import rle

            results += rle.run(args.repeats, args.labels)
        elif suite == "synth":
            from defectd.engines.benchmarks import synth

            results += synth.run(args.repeats)
        elif suite == "model":
            from defectd.engines.benchmarks import model
            from defectd.engines.model_card import default_model_dir

            model_dir = args.model or default_model_dir()
            results += model.run(model_dir, args.model_repeats, args.threads)
        elif suite == "postprocess":
            from defectd.engines.benchmarks import postprocess
            from defectd.engines.model_card import default_model_dir

            model_dir = args.model or default_model_dir()
            results += postprocess.run(model_dir, args.model_repeats, args.threads)
        elif suite == "engine":
            engine_result = _run_engine(args)
        elif suite == "pipeline":
            pipeline_result = _run_pipeline(args)
        elif suite == "soak":
            soak_result = _run_soak(args)
    words = ["defectd", "bench", *args.suites]
    if {"rle", "synth"} & set(args.suites):
        words += ["--repeats", str(args.repeats)]
    if args.labels:
        words += ["--labels", str(args.labels)]
    if {"model", "postprocess"} & set(args.suites):
        words += ["--model-repeats", str(args.model_repeats), "--threads", str(args.threads)]
        if args.model:
            words += ["--model", str(args.model)]
    if "engine" in args.suites:
        words += _engine_words(args)
    if "pipeline" in args.suites:
        words += _pipeline_words(args)
    if "soak" in args.suites:
        words += _soak_words(args)
    command = " ".join(shlex.quote(word) for word in words)
    header = (
        f"Machine: {machine_summary()}  \n"
        f"Date: {dt.date.today().isoformat()}  \n"
        f"Command: `{command}`\n"
    )
    print(header)
    if results:
        print(format_table(results))
    if engine_result is not None:
        from defectd.engines.benchmarks.engine_report import format_markdown

        if results:
            print()
        print(format_markdown(engine_result))
    if pipeline_result is not None:
        from defectd.daemon.tools.benchmarks.pipeline import format_markdown as pipeline_markdown

        if results or engine_result is not None:
            print()
        print(pipeline_markdown(pipeline_result))
    if soak_result is not None:
        from defectd.daemon.tools.benchmarks.soak import format_markdown as soak_markdown

        if results or engine_result is not None or pipeline_result is not None:
            print()
        print(soak_markdown(soak_result))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine_summary(),
                    "command": command,
                    "results": [asdict(r) for r in results],
                    **({"engine": engine_result.to_dict()} if engine_result else {}),
                    **({"pipeline": pipeline_result.to_dict()} if pipeline_result else {}),
                    **({"soak": soak_result.to_dict()} if soak_result else {}),
                },
                indent=2,
            )
        )
    # A soak that leaks fails the command, so a scheduled soak can gate a release.
    return 1 if soak_result is not None and not soak_result.passed else 0


def _run_soak(args: argparse.Namespace) -> SoakResult:
    from defectd.daemon.tools.benchmarks.soak import plot_soak, run_soak_bench

    result = run_soak_bench(
        minutes=args.minutes,
        workdir=args.soak_out,
        fps=args.fps,
        backend="null" if args.backend == "auto" else args.backend,
        batch=args.soak_batch,
        threads=args.threads,
        warmup_s=args.soak_warmup_s,
        interval_s=args.soak_interval_s,
        model_dir=args.model,
        progress=not args.no_progress,
    )
    if args.plot:
        path = args.plot
        if "engine" in args.suites:
            path = path.with_name(f"{path.stem}-soak{path.suffix}")
        plot_soak(result, path)
    return result


def _soak_words(args: argparse.Namespace) -> list[str]:
    """The soak suite's options, for the recorded command line."""
    words = ["--minutes", f"{args.minutes:g}"]
    if not {"engine", "pipeline"} & set(args.suites):
        words += ["--backend", "null" if args.backend == "auto" else args.backend]
    if args.fps is not None:
        words += ["--fps", f"{args.fps:g}"]
    if args.soak_warmup_s is not None:
        words += ["--soak-warmup-s", f"{args.soak_warmup_s:g}"]
    words += ["--soak-interval-s", f"{args.soak_interval_s:g}"]
    words += ["--soak-batch", str(args.soak_batch)]
    if args.plot:
        words += ["--plot", str(args.plot)]
    return words


def _run_engine(args: argparse.Namespace) -> EngineBenchResult:
    from defectd.engines.benchmarks.engine import run_engine_bench
    from defectd.engines.model_card import default_model_dir

    return run_engine_bench(
        args.model or default_model_dir(),
        backend=args.backend,
        batches=args.batch,
        seconds=args.seconds,
        threads=args.threads,
        precision=args.precision,
        device=args.device,
        json_out=args.json_out,
        plot=args.plot,
        progress=not args.no_progress,
    )


def _run_pipeline(args: argparse.Namespace) -> PipelineBenchResult:
    from defectd.daemon.tools.benchmarks.pipeline import run_pipeline_bench

    return run_pipeline_bench(
        args.model,
        backend=args.backend,
        batch=args.pipeline_batch,
        null_batch=args.pipeline_null_batch,
        cameras=args.pipeline_cameras,
        seconds=args.pipeline_seconds,
        threads=args.threads,
        max_wait_ms=args.pipeline_max_wait_ms,
        workdir=args.pipeline_out,
        progress=not args.no_progress,
    )


def _pipeline_words(args: argparse.Namespace) -> list[str]:
    """The pipeline suite's options, for the recorded command line."""
    words = []
    if "engine" not in args.suites:  # else the engine suite's words already name them
        words += ["--backend", args.backend]
        if not {"model", "postprocess"} & set(args.suites):
            words += ["--threads", str(args.threads)]
            if args.model:
                words += ["--model", str(args.model)]
    words += ["--pipeline-batch", str(args.pipeline_batch)]
    words += ["--pipeline-null-batch", str(args.pipeline_null_batch)]
    words += ["--pipeline-seconds", f"{args.pipeline_seconds:g}"]
    words += ["--pipeline-cameras", str(args.pipeline_cameras)]
    words += ["--pipeline-max-wait-ms", f"{args.pipeline_max_wait_ms:g}"]
    return words


def _engine_words(args: argparse.Namespace) -> list[str]:
    """The engine suite's options, for the recorded command line."""
    words = ["--backend", args.backend, "--batch", ",".join(map(str, args.batch))]
    words += ["--seconds", f"{args.seconds:g}"]
    if "model" not in args.suites:  # else the model suite's words already name them
        words += ["--threads", str(args.threads)]
        if args.model:
            words += ["--model", str(args.model)]
    if args.precision:
        words += ["--precision", args.precision]
    if args.device:
        words += ["--device", args.device]
    return words
