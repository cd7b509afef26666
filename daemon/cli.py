"""The `defectd` console script: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import importlib
import logging
import shlex
import sys
from collections.abc import Sequence

from defectd.daemon.logs import configure_logging, stream_is_journal

# Subcommand modules, imported only when the parser is built. Each defines
# `register(subparsers)`, which adds its parser and sets `handler(args) -> int`.
COMMANDS: tuple[str, ...] = (
    "defectd.daemon.commands.synth",
    "defectd.daemon.commands.score",
    "defectd.daemon.commands.bench",
    "defectd.daemon.commands.train",
    "defectd.daemon.commands.export",
    "defectd.daemon.commands.tune",
    "defectd.daemon.commands.evaluate",
    "defectd.daemon.commands.predict",
    "defectd.daemon.commands.inspect",
    "defectd.daemon.commands.build_engine",
    "defectd.daemon.commands.check_config",
    "defectd.daemon.commands.keygen",
    "defectd.daemon.commands.run",
    "defectd.daemon.commands.simulate",
    "defectd.daemon.commands.tail",
    "defectd.daemon.commands.demo",
)


class CommandError(Exception):
    """A user-facing failure: printed as one line without a traceback, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    """The full `defectd` argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="defectd",
        description="Steel-strip surface defect inspection: synthesise, score, serve.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `defectd` subcommand and return its exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(arguments)
    # What produced an artefact is recorded with it (model cards, training runs).
    args.command_line = shlex.join(["defectd", *arguments])
    # Under systemd (ExecStartPre=defectd build-engine, say) lines carry journal priorities.
    journal = stream_is_journal(sys.stderr)
    if journal:
        configure_logging("debug" if args.verbose else "info", "text", journal=True)
    else:
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
    try:
        status: int = args.handler(args)
    except (CommandError, ValueError, OSError, RuntimeError) as exc:
        # Input problems (bad files, malformed rows, wrong options) are ValueError/OSError
        # subclasses, and a missing runtime (no CUDA, no TensorRT) a RuntimeError, each with
        # a message that names the fix; -v shows the traceback too.
        if args.verbose:
            raise
        prefix = "<3>" if journal else ""
        print(f"{prefix}defectd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"defectd {args.command}: interrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
