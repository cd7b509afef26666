"""`defectd bench store`: defects/s the store sustains; the daemon's frames/s store on vs off."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from defectd.daemon.commands.bench.record import add_common, positive, report


def register(suites: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the store suite."""
    parser = suites.add_parser(
        "store",
        help="the defect store: defects/s written; daemon frames/s with the store on vs off",
        description="(a) Synthetic strip defects written in batches to each --url (default: "
        "a fresh SQLite file), straight and through the store writer; (b) two daemons, store "
        "off and on, pushed raw frames at their maximum rate in interleaved rounds: the ratio "
        "of their frames/s (target ≥ 0.98).",
    )
    parser.add_argument(
        "--url",
        action="append",
        metavar="URL",
        help="a store to write to, repeatable (sqlite:///PATH, postgresql://…); default: a "
        "temporary SQLite file",
    )
    parser.add_argument("--defects", type=int, default=20000, help="defects written (20000)")
    parser.add_argument("--batch", type=int, default=200, help="defects per write (200)")
    parser.add_argument("--backend", default="null", help="the daemons' engine (null)")
    parser.add_argument("--daemon-batch", type=int, default=32, help="engine batch (32)")
    parser.add_argument("--threads", type=int, default=2, help="engine threads (2)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per phase (5)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument(
        "--daemon",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run (b), the daemons (default: yes)",
    )
    add_common(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from defectd.daemon.tools.benchmarks.store import format_markdown, run_store_bench

    for name in ("--defects", "--batch", "--seconds", "--rounds", "--daemon-batch"):
        positive(name, getattr(args, name[2:].replace("-", "_")))
    with tempfile.TemporaryDirectory(prefix="defectd-bench-store-") as workdir:
        urls = args.url or [f"sqlite:///{Path(workdir) / 'bench.db'}"]
        result = run_store_bench(
            urls=urls,
            defects=args.defects,
            batch=args.batch,
            backend=args.backend,
            seconds=args.seconds,
            rounds=args.rounds,
            daemon_batch=args.daemon_batch,
            threads=args.threads,
            workdir=Path(workdir),
            daemon=args.daemon,
        )
    report(args, [format_markdown(result)], {"store": result.to_dict()})
    return 0
