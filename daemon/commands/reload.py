"""`defectd reload`: ask the running daemon to re-read its config file (the unit's
ExecReload), and print what changed and how it applied.

Exit 0: applied (or nothing changed). Exit 1: refused (the running config is kept) or the
model swap failed (the old model keeps serving); each line says why. Exit 2: no daemon
answers on the control socket. docs/deploy.md, "Changing a running daemon".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from defectd.daemon.config import DEFAULT_CONFIG_PATH, ConfigError, load_config


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `reload` subcommand."""
    parser = subparsers.add_parser(
        "reload",
        help="re-read the config of the running daemon; swap models live",
        description=(
            "Tell the daemon running with --config to read it again. Thresholds, "
            "post-processing, cameras and the shadow run change from the next frame; a new "
            "model.dir or engine is opened, warmed and checked against its golden outputs "
            "beside the running engine, which serves until the switch (and keeps serving if "
            "the new one fails). Keys that need a restart are named and keep their running "
            "value; an invalid file is refused as a whole. Prints one line per change and "
            "exits 0 when applied, 1 when refused or the swap failed, 2 without a daemon. "
            "SIGHUP does the same, with the outcome in the daemon's log."
        ),
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG_PATH,
        help=f"the running daemon's config file (default: {DEFAULT_CONFIG_PATH})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long to wait for the answer (default: 180; a swap warms an engine first)",
    )
    parser.set_defaults(handler=run)


def endpoint_of_invalid(path: Path) -> str | None:
    """The control socket named by a config file that does not pass its checks: from its raw
    ``control.socket`` and ``line.name`` (None where even those cannot be read)."""
    from defectd.daemon.config import read_yaml
    from defectd.daemon.control import control_endpoint_for

    try:
        raw = read_yaml(path.read_text(encoding="utf-8"), str(path))
    except (OSError, ConfigError):
        return None
    if not isinstance(raw, dict):
        return None
    control, line = raw.get("control") or {}, raw.get("line") or {}
    socket = control.get("socket") if isinstance(control, dict) else None
    name = line.get("name") if isinstance(line, dict) else None
    if socket is not None and not isinstance(socket, str):
        return None
    if socket is not None and not Path(socket).is_absolute():
        socket = str(path.parent / socket)
    if socket is None and not isinstance(name, str):
        return None
    return control_endpoint_for(socket, str(name))


def run(args: argparse.Namespace) -> int:
    from defectd.daemon.control import (
        RELOAD_TIMEOUT_S,
        ControlError,
        control_endpoint,
        request_reload,
    )

    endpoint: str | None
    try:
        endpoint = control_endpoint(load_config(args.config))
    except ConfigError as exc:
        # Still ask the daemon: it refuses the file (counted and logged there) and says why.
        endpoint = endpoint_of_invalid(args.config)
        if endpoint is None:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            print("the daemon's control socket cannot be found in this file", file=sys.stderr)
            return 1
    try:
        reply = request_reload(endpoint, args.timeout or RELOAD_TIMEOUT_S)
    except ControlError as exc:
        print(exc, file=sys.stderr)
        return 2
    stream = sys.stdout if reply.ok else sys.stderr
    verdict = "reloaded" if reply.ok else "reload not applied in full"
    print(f"{verdict}: config generation {reply.generation}, serving {reply.model}", file=stream)
    for line in reply.lines:
        print(f"  {line}", file=stream)
    return 0 if reply.ok else 1
