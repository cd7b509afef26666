"""What every bench suite prints and records: machine, date, command, then its figures."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from defectd.daemon.commands.output import add_json_option, emit_json, to_stdout
from defectd.engines.benchmarks import machine_summary


def add_common(parser: argparse.ArgumentParser) -> None:
    """--json FILE, shared by every suite (one spelling across defectd's commands)."""
    add_json_option(parser, "the results, with machine, date and command,")


def positive(name: str, value: float) -> None:
    """Refuse a count or duration below 1 / at or below 0, naming the option."""
    from defectd.daemon.cli import CommandError

    if not value > 0:
        raise CommandError(f"{name} must be positive, got {value:g}")


def report(args: argparse.Namespace, blocks: list[str], payload: dict[str, Any]) -> None:
    """Print the header and the markdown blocks; write the JSON record when --json is given."""
    machine = machine_summary()
    today = dt.date.today().isoformat()
    command = str(getattr(args, "command_line", f"defectd bench {args.suite}"))
    if not to_stdout(args):
        print(f"Machine: {machine}  \nDate: {today}  \nCommand: `{command}`\n")
        print("\n\n".join(blocks))
    record = {"machine": machine, "date": today, "command": command, "suite": args.suite}
    emit_json(args, {**record, **payload})
