"""`defectd bench soak`: the daemon for minutes at a steady rate, watched for leaks."""

from __future__ import annotations

import argparse
from pathlib import Path

from defectd.daemon.commands.bench.record import add_common, positive, report
from defectd.engines.selection import CHOICES


def register(suites: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the soak suite."""
    parser = suites.add_parser(
        "soak",
        help="the daemon for minutes at a steady rate: RSS, fds, threads, segments",
        description="Run the daemon for --minutes at a steady rate and sample its process tree "
        "(RSS, fds, threads, shared-memory segments). Exit status 1 when it leaks, so a "
        "scheduled soak can gate a release.",
    )
    parser.add_argument("--model", type=Path, help="model directory (default: the bundled model)")
    parser.add_argument(
        "--backend", default="null", choices=CHOICES, help="engine backend (default null)"
    )
    parser.add_argument("--threads", type=int, default=1, help="engine CPU threads (default 1)")
    parser.add_argument(
        "--minutes", type=float, default=10.0, help="measured minutes after warm-up (default 10)"
    )
    parser.add_argument(
        "--fps",
        type=float,
        help="frames/s offered, all cameras together (default: 80%% of the capacity measured "
        "first)",
    )
    parser.add_argument(
        "--warmup-s",
        type=float,
        metavar="S",
        help="warm-up before the window (default: 20%% of the run, 10 to 60 s)",
    )
    parser.add_argument(
        "--interval-s", type=float, default=5.0, metavar="S", help="sampling interval (5)"
    )
    parser.add_argument("--batch", type=int, default=8, metavar="N", help="engine batch (8)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("out/bench-soak"),
        help="config and daemon log (default out/bench-soak)",
    )
    parser.add_argument("--plot", type=Path, help="write a PNG of RSS, fds and threads")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_common(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Soak, print the block; exit status 1 when a leak verdict fails."""
    from defectd.daemon.tools.benchmarks.soak import run_soak_bench
    from defectd.daemon.tools.benchmarks.soak_report import format_markdown, plot_soak

    for name in ("--minutes", "--interval-s", "--batch", "--threads"):
        positive(name, getattr(args, name[2:].replace("-", "_")))
    result = run_soak_bench(
        minutes=args.minutes,
        workdir=args.out,
        fps=args.fps,
        backend=args.backend,
        batch=args.batch,
        threads=args.threads,
        warmup_s=args.warmup_s,
        interval_s=args.interval_s,
        model_dir=args.model,
        progress=not args.no_progress,
    )
    if args.plot:
        plot_soak(result, args.plot)
    report(args, [format_markdown(result)], {"soak": result.to_dict()})
    return 0 if result.passed else 1
