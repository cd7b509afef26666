"""`defectd bench outputs`: the daemon's frames/s with the web view, OPC UA and MQTT on vs off."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from defectd.daemon.commands.bench.record import add_common, positive, report


def register(suites: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the outputs suite."""
    parser = suites.add_parser(
        "outputs",
        help="daemon frames/s with the web view, OPC UA and MQTT on vs off (target ≥ 0.95)",
        description="Two daemons, one with the web view, the OPC UA server and the MQTT "
        "bridge on (and the store, which the web view reads), pushed raw frames at their "
        "maximum rate in interleaved rounds. Starts a Mosquitto broker of its own (Debian "
        "`mosquitto`); needs the mqtt and opcua extras.",
    )
    parser.add_argument("--backend", default="onnxruntime", help="the daemons' engine")
    parser.add_argument("--batch", type=int, default=8, help="engine batch (8)")
    parser.add_argument("--threads", type=int, default=2, help="engine threads (2)")
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds per phase (8)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    add_common(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from defectd.daemon.tools.benchmarks.outputs import format_markdown, run_outputs_bench

    for name in ("--batch", "--seconds", "--rounds"):
        positive(name, getattr(args, name[2:]))
    with tempfile.TemporaryDirectory(prefix="defectd-bench-outputs-") as workdir:
        result = run_outputs_bench(
            backend=args.backend,
            seconds=args.seconds,
            rounds=args.rounds,
            batch=args.batch,
            threads=args.threads,
            workdir=Path(workdir),
        )
    report(args, [format_markdown(result)], {"outputs": result.to_dict()})
    return 0
