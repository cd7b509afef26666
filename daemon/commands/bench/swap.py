"""`defectd bench swap`: frame latency while the daemon swaps models and reloads thresholds."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from defectd.daemon.commands.bench.record import add_common, positive, report


def register(suites: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the swap suite."""
    parser = suites.add_parser(
        "swap",
        help="latency p50/p99 per phase through two model swaps and a threshold reload",
        description="One daemon with one camera at a steady rate: a swap to a copy of the "
        "bundled model, a threshold reload and the swap back, each by the control socket "
        "`defectd reload` uses, with steady phases between. Prints receive → publish latency "
        "per phase and whether every frame was published exactly once.",
    )
    parser.add_argument("--backend", default="onnxruntime", help="the daemon's engine")
    parser.add_argument("--fps", type=float, default=10.0, help="camera frames/s (10)")
    parser.add_argument("--batch", type=int, default=4, help="engine batch (4)")
    parser.add_argument("--threads", type=int, default=2, help="engine threads (2)")
    parser.add_argument("--settle", type=float, default=6.0, help="seconds per steady phase (6)")
    add_common(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from defectd.daemon.tools.benchmarks.swap import format_markdown, run_swap_bench

    for name in ("--fps", "--batch", "--threads", "--settle"):
        positive(name, getattr(args, name[2:]))
    with tempfile.TemporaryDirectory(prefix="defectd-bench-swap-") as workdir:
        result = run_swap_bench(
            backend=args.backend,
            fps=args.fps,
            batch=args.batch,
            threads=args.threads,
            settle_s=args.settle,
            workdir=Path(workdir),
        )
    report(args, [format_markdown(result)], {"swap": result.to_dict()})
    return 0 if result.exact else 1
