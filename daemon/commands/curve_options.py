"""The CURVE options of a command that subscribes to the daemon's events (`tail`, `web`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_subscriber_curve_options(parser: argparse.ArgumentParser, who: str) -> None:
    """``--curve-server-key`` and ``--curve-client-key`` for a subscriber (`who`: "this
    subscriber", "this web view", ...)."""
    parser.add_argument(
        "--curve-server-key",
        type=Path,
        metavar="FILE",
        help="CURVE: the daemon's public FILE.key (with --curve-client-key; docs/security.md)",
    )
    parser.add_argument(
        "--curve-client-key",
        type=Path,
        metavar="FILE",
        help=f"CURVE: {who}'s FILE.key_secret; its .key must be in the daemon's "
        "security.subscriber_clients_dir",
    )
