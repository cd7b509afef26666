"""--json FILE, the one spelling of "write JSON" across defectd's commands (``-``: stdout)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from defectd.engines.files import write_json

STDOUT = "-"


def add_json_option(parser: argparse.ArgumentParser, what: str) -> None:
    """Add ``--json FILE``: `what` is written there as JSON; ``-`` prints it instead."""
    parser.add_argument(
        "--json",
        metavar="FILE",
        help=f"write {what} as JSON to FILE (- for standard output, in place of the text)",
    )


def to_stdout(args: argparse.Namespace) -> bool:
    """True when --json - asked for JSON on standard output (so no text goes there)."""
    return getattr(args, "json", None) == STDOUT


def emit_json(args: argparse.Namespace, data: Any) -> None:
    """Write `data` where --json said (nothing when it was not given)."""
    target = getattr(args, "json", None)
    if target is None:
        return
    if target == STDOUT:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(data, path)


def refuse_unused(*rules: tuple[str, bool, bool, str]) -> None:
    """Refuse an option given where it would have no effect (never accept-and-ignore).

    Each rule is ``(option, given, used, needs)``: `given` when the value differs from the
    option's default, `used` when the rest of the command line makes it count, `needs` says
    what would.
    """
    from defectd.daemon.cli import CommandError

    for option, given, used, needs in rules:
        if given and not used:
            raise CommandError(f"{option} has no effect {needs}: leave it out")
