"""`defectd bench pipeline`: the daemon on a simulated line against the bare engine."""

from __future__ import annotations

import argparse
from pathlib import Path

from defectd.daemon.commands.bench.engine import add_engine_options
from defectd.daemon.commands.bench.record import add_common, positive, report


def register(suites: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the pipeline suite."""
    parser = suites.add_parser(
        "pipeline",
        help="the daemon on a simulated line: capacity, latency, daemon / bare engine",
        description="Run the real daemon with the simulator on loopback: (a) null-engine "
        "capacity, (b) the daemon with the engine at full rate against the bare engine, (c) "
        "latency capture→publish at 80% of that rate.",
    )
    add_engine_options(parser)
    parser.add_argument(
        "--batch",
        type=int,
        default=8,
        metavar="N",
        help="engine batch of the real-engine runs and the bare engine (default 8)",
    )
    parser.add_argument(
        "--null-batch",
        type=int,
        default=32,
        metavar="N",
        help="batch of the null-engine capacity run (default 32)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=8.0,
        metavar="S",
        help="sending time of each run, and the bare engine's timing (default 8)",
    )
    parser.add_argument("--cameras", type=int, default=2, metavar="N", help="cameras (2)")
    parser.add_argument(
        "--max-wait-ms",
        type=float,
        default=20.0,
        metavar="MS",
        help="batching.max_wait_ms of the daemon (default 20)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("out/bench-pipeline"),
        help="configs and daemon logs (default out/bench-pipeline)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_common(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the three daemon runs and the bare engine; print the block."""
    from defectd.daemon.tools.benchmarks.pipeline import run_pipeline_bench
    from defectd.daemon.tools.benchmarks.pipeline_report import format_markdown

    for name in ("--batch", "--null-batch", "--seconds", "--cameras", "--threads"):
        positive(name, getattr(args, name[2:].replace("-", "_")))
    result = run_pipeline_bench(
        args.model,
        backend=args.backend,
        batch=args.batch,
        null_batch=args.null_batch,
        cameras=args.cameras,
        seconds=args.seconds,
        threads=args.threads,
        max_wait_ms=args.max_wait_ms,
        workdir=args.out,
        progress=not args.no_progress,
    )
    report(args, [format_markdown(result)], {"pipeline": result.to_dict()})
    return 0
