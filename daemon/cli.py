"""The `defectd` console script: one entry point, one subcommand per task, grouped by audience.

Only the module of the command being run is imported, so `defectd run` loads the runtime and
nothing else (no clients, no dev tools, no training), and `defectd --help` loads no command.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from defectd.daemon.logs import configure_logging, stream_is_journal
from defectd.engines.errors import UserError


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, the module that registers it and its one-line summary."""

    name: str
    module: str
    summary: str


@dataclass(frozen=True)
class CommandGroup:
    """Commands for one audience, listed together by `defectd --help`."""

    title: str
    commands: tuple[Command, ...]


def _command(name: str, summary: str) -> Command:
    return Command(name, f"defectd.daemon.commands.{name.replace('-', '_')}", summary)


# Each module defines `register(subparsers)`, which adds the command's parser and sets
# `handler(args) -> int`.
GROUPS: tuple[CommandGroup, ...] = (
    CommandGroup(
        "service (the inspection PC)",
        (
            _command("run", "run the inspection daemon (what systemd starts)"),
            _command("check-config", "check a daemon config file; print the effective config"),
            _command("reload", "re-read the config of the running daemon; swap models live"),
            _command("build-engine", "build and cache the TensorRT engine for this GPU"),
            _command("keygen", "write a ZeroMQ CURVE key pair for ingest or event sockets"),
        ),
    ),
    CommandGroup(
        "line tools (integrators, commissioning)",
        (
            _command("simulate", "simulated cameras: send frames to the daemon over ZeroMQ"),
            _command("camera", "GenICam gateway: a GigE/USB3 Vision camera → defectd frames"),
            _command("tail", "print the daemon's defect, frame and status events as they come"),
            _command("coils", "coils in the defect store: list, show one, write its report"),
            _command("shadow", "a shadow run's comparison with the live model: table, picture"),
            _command("web", "the read-only web view: line status, live defects, coils"),
            _command("demo", "simulated line → the real daemon → a subscriber, scored"),
        ),
    ),
    CommandGroup(
        "model (training and using a model)",
        (
            _command("train", "train the segmentation model (needs defectd[train])"),
            _command("export", "export a checkpoint to ONNX + TorchScript with a model card"),
            _command("quantize", "an INT8 ONNX for a model, kept only if it matches FP32"),
            _command("tune", "tune per-class thresholds and minimum areas; updates the card"),
            _command("crossval", "score fold models on few real frames, thresholds cross-fitted"),
            _command("evaluate", "Kaggle Dice, per-class Dice, image precision/recall"),
            _command("predict", "write a Kaggle submission CSV for a folder of frames"),
            _command("inspect", "draw the defects the model finds on frames (PNG)"),
            _command("golden", "check a model against its stored golden outputs, or write them"),
        ),
    ),
    CommandGroup(
        "data",
        (
            _command("synth", "generate labelled synthetic steel frames, or a preview sheet"),
            _command("score", "score a prediction CSV against the truth (Kaggle mean Dice)"),
            _command("dataset", "check a labelled data set: format, classes, sizes, problems"),
        ),
    ),
    CommandGroup(
        "benchmarks",
        (_command("bench", "benchmarks by suite: micro, rle, engine, pipeline, soak, …"),),
    ),
)
COMMANDS: dict[str, Command] = {c.name: c for group in GROUPS for c in group.commands}


# OS errors about a path the user named: shown as one line like a UserError.
_FILE_MISTAKES = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)


class CommandError(UserError):
    """A user-facing failure raised by a command handler: one line, exit status 2."""


def _listing() -> str:
    width = max(len(name) for name in COMMANDS) + 2
    blocks = []
    for group in GROUPS:
        lines = [f"{group.title}:"]
        lines += [f"  {c.name:<{width}}{c.summary}" for c in group.commands]
        blocks.append("\n".join(lines))
    blocks.append("`defectd COMMAND --help` for a command's options.")
    return "\n\n".join(blocks)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The `defectd` parser; with `only`, just that command's module is imported."""
    parser = argparse.ArgumentParser(
        prog="defectd",
        usage="defectd [-h] [-v] COMMAND ...",
        description="Steel-strip surface defect inspection: serve, simulate, train, measure.",
        epilog=_listing(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    # The listing is the epilog (grouped); `prog` keeps "defectd run" in each command's usage.
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, help=argparse.SUPPRESS, prog="defectd"
    )
    names = [only] if only in COMMANDS else list(COMMANDS) if only is None else []
    for name in names:
        importlib.import_module(COMMANDS[name].module).register(subparsers)
    if only is not None and not names:
        # An unknown word: register every name (cheaply) so argparse says "invalid choice".
        for name in COMMANDS:
            subparsers.add_parser(name)
    return parser


def _command_word(arguments: Sequence[str]) -> str | None:
    """The subcommand named in argv (the first word that is not a global option)."""
    for word in arguments:
        if word in ("-v", "--verbose"):
            continue
        return None if word.startswith("-") else word
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `defectd` subcommand and return its exit status.

    A `UserError` (or a missing file the user named) prints one line and returns 2; any other
    exception is a bug and propagates with its traceback (exit status 1 from the interpreter).
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    word = _command_word(arguments)
    # `defectd --help` (no command word) lists the commands without importing any of them.
    args = build_parser(only=word or "").parse_args(arguments)
    # What produced an artefact is recorded with it (model cards, training runs, benchmarks).
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
    except (UserError, *_FILE_MISTAKES) as exc:
        # Mistakes the user can fix, each with a message that names the fix; -v shows the
        # traceback too.
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
