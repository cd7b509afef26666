"""`defectd shadow report`: how a shadow model compared with the live one — table, picture."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from defectd.daemon.cli import CommandError

if TYPE_CHECKING:
    from defectd.daemon.shadow.report import ShadowSummary


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `shadow` subcommand and its `report`."""
    parser = subparsers.add_parser(
        "shadow",
        help="a shadow run's comparison with the live model: table, picture",
        description="Read the shadow directory a daemon with shadow.model_dir writes "
        "(shadow.dir): how the candidate model's defects compared with the live model's, "
        "class by class, over the frames it ran on (docs/shadow.md).",
    )
    commands = parser.add_subparsers(dest="shadow_command", metavar="COMMAND", required=True)
    report = commands.add_parser(
        "report",
        help="per class Dice, recall, precision and frame agreement; a picture",
        description="Print a table per class (or JSON) and write a picture: bars of Dice, "
        "recall and precision against the live model, and the worst disagreements.",
    )
    report.add_argument(
        "--dir", type=Path, required=True, metavar="DIR", help="the daemon's shadow.dir"
    )
    report.add_argument("--run", type=int, metavar="ID", help="only this run (default: all)")
    report.add_argument(
        "--out", type=Path, metavar="PNG", help="the picture (default: DIR/shadow-report.png)"
    )
    report.add_argument("--json", action="store_true", help="print JSON instead of the table")
    report.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from defectd.daemon.shadow.report import summarise
    from defectd.daemon.shadow.store import ShadowStore

    try:
        store = ShadowStore.open_existing(args.dir)
    except ValueError as exc:
        raise CommandError(f"{exc}; name it with --dir") from None
    try:
        summary = summarise(store, args.run)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    finally:
        store.close()
    return _report(summary, args)


def _report(summary: ShadowSummary, args: argparse.Namespace) -> int:
    """Write the picture, then print the table (or JSON) and where the picture went."""
    import cv2

    from defectd.daemon.shadow.report import format_table, summary_json
    from defectd.daemon.shadow.report_picture import report_picture
    from defectd.engines.files import atomic_write

    out: Path = args.out if args.out is not None else args.dir / "shadow-report.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    picture = report_picture(summary, args.dir)
    ok, encoded = cv2.imencode(".png", picture, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise OSError(f"OpenCV could not encode the shadow report picture for {out}")
    data = encoded.tobytes()
    atomic_write(out, lambda partial: partial.write_bytes(data))
    if args.json:
        print(json.dumps(summary_json(summary), indent=2, ensure_ascii=False))
        print(f"picture: {out}", file=sys.stderr)
    else:
        print(format_table(summary))
        print(f"\npicture: {out}")
    return 0
