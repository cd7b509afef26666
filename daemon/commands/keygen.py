"""`defectd keygen`: a CURVE key pair as pyzmq certificate files (docs/security.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `keygen` subcommand."""
    parser = subparsers.add_parser(
        "keygen",
        help="write a ZeroMQ CURVE key pair (NAME.key public, NAME.key_secret secret)",
        description=(
            "Write a CURVE key pair for the daemon, a camera or a subscriber as pyzmq/czmq "
            "certificate files: DIR/NAME.key (public: copy it to the peers' allow-lists) and "
            "DIR/NAME.key_secret (secret, mode 0600: stays on this host). See docs/security.md."
        ),
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write to")
    parser.add_argument("--name", required=True, help="file name stem, e.g. defectd or cam0")
    parser.add_argument(
        "--force", action="store_true", help="replace an existing key pair of that name"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Write the pair; prints the two paths and the public key (never the secret)."""
    from defectd.daemon.curve import load_public_key, write_key_pair

    public, secret = write_key_pair(args.out, args.name, force=args.force)
    print(f"public key:  {public} ({load_public_key(public).decode()})")
    print(f"secret key:  {secret} (mode 0600; keep it on this host)")
    print(
        "next: copy the .key file into the allow-list folder of every peer that should accept "
        "this key (docs/security.md)",
        file=sys.stderr,
    )
    return 0
