"""`defectd tail`: print defectd's published events as they arrive (docs/simulator.md)."""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from typing import TextIO

from defectd.daemon.commands.curve_options import add_subscriber_curve_options
from defectd.daemon.commands.output import STDOUT
from defectd.daemon.commands.simulate import stop_on_signals

_ENDPOINT = "tcp://127.0.0.1:5560"  # clients.tail.DEFAULT_ENDPOINT, without importing zmq


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `tail` subcommand."""
    parser = subparsers.add_parser(
        "tail",
        help="print defectd's defect, frame and status events as they arrive",
        description=(
            "Subscribe to defectd's events and print one line per message (or the JSON as "
            "received), reporting missed messages from the per-topic sequence numbers. Stops "
            "on Ctrl-C, after --count messages or after --timeout seconds."
        ),
    )
    parser.add_argument(
        "--connect",
        default=_ENDPOINT,
        metavar="ENDPOINT",
        help=f"the daemon's publish endpoint (default {_ENDPOINT})",
    )
    parser.add_argument(
        "--topic",
        action="append",
        metavar="PREFIX",
        help="topic prefix, repeatable, e.g. defect.line1. or status (default: everything)",
    )
    parser.add_argument(
        "--json",
        metavar="FILE",
        help="write each message's JSON, one per line, to FILE in place of the formatted "
        "lines (- for standard output)",
    )
    parser.add_argument("--count", type=int, help="stop after N messages")
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="stop after S seconds (exit status 1 if --count messages did not come by then)",
    )
    parser.add_argument("--utc", action="store_true", help="times in UTC, not the local zone")
    add_subscriber_curve_options(parser, "this subscriber")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Tail until done; 1 when --timeout ends the tail before --count messages came."""
    from defectd.daemon.clients.tail import TailConfig, run_tail

    config = TailConfig(
        endpoint=args.connect,
        topics=tuple(args.topic) if args.topic else ("",),
        json_lines=args.json is not None,
        count=args.count,
        timeout_s=args.timeout,
        utc=args.utc,
        curve_server_key=args.curve_server_key,
        curve_client_key=args.curve_client_key,
    )
    stop = threading.Event()
    with contextlib.ExitStack() as stack:
        out: TextIO = sys.stdout
        if args.json not in (None, STDOUT):
            out = stack.enter_context(open(args.json, "a", encoding="utf-8"))
        stack.enter_context(stop_on_signals(stop))
        result = run_tail(config, out, sys.stderr, stop)
    summary = f"tail: {result.printed:,} message(s), {result.missed:,} missed"
    if result.restarts:
        summary += f", {result.restarts:,} publisher restart(s)"
    if result.unreadable:
        summary += f", {result.unreadable:,} unreadable"
    if result.ended == "timeout" and config.count is not None:
        print(f"{summary}; timed out before {config.count:,} messages", file=sys.stderr)
        return 1
    print(summary, file=sys.stderr)
    return 0
