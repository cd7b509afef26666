"""`defectd coils`: read the defect store — coils, one coil's defects, a coil's report."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from defectd.daemon.cli import CommandError

if TYPE_CHECKING:
    from defectd.daemon.coils.model import CoilRecord, CoverageGap, StripDefect
    from defectd.daemon.store.backend import Store


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `coils` subcommand and its `list`, `show` and `report`."""
    parser = subparsers.add_parser(
        "coils",
        help="coils in the defect store: list, show one, write its report",
        description="Read the defect store the daemon writes (store.enabled): closed coils "
        "with their grades, a coil's defects and coverage gaps, and a coil report (map "
        "picture, tables, CSV and JSON for a MES). The store is --store URL, else the "
        "config's store.url (--config), else the default SQLite file.",
    )
    commands = parser.add_subparsers(dest="coils_command", metavar="COMMAND", required=True)
    listing = commands.add_parser("list", help="closed coils, newest first")
    listing.add_argument("--line", help="only this line's coils")
    listing.add_argument(
        "--since", type=_since, metavar="WHEN", help="ended since: 2026-12-01, an ISO time or 8h"
    )
    listing.add_argument("--grade", help="only coils of this grade")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (50)")
    show = commands.add_parser("show", help="one coil: its record, defects and gaps")
    show.add_argument("coil", help="the coil id")
    show.add_argument("--line", help="the line, where lines share coil ids")
    show.add_argument("--defects", type=int, default=20, help="defects listed, largest first")
    report = commands.add_parser("report", help="a coil's report: map, tables, CSV, JSON")
    report.add_argument("coil", help="the coil id")
    report.add_argument("--line", help="the line, where lines share coil ids")
    report.add_argument("--out", type=Path, required=True, metavar="DIR", help="report folder")
    for sub in (listing, show, report):
        sub.add_argument("--store", metavar="URL", help="sqlite:///PATH or postgresql://…")
        sub.add_argument("--config", type=Path, metavar="FILE", help="the daemon's config")
        sub.set_defaults(handler=run)


def _since(text: str) -> int:
    """--since as ns since the epoch: a date, an ISO time, or an age like 8h / 30m / 2d."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text and text[-1] in units and text[:-1].replace(".", "", 1).isdigit():
        seconds = float(text[:-1]) * units[text[-1]]
        return int((dt.datetime.now(dt.UTC).timestamp() - seconds) * 1e9)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--since takes a date (2026-12-01), an ISO time or an age (8h, 30m, 2d); got {text!r}"
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()  # local time, as the operator reads it
    return int(when.timestamp() * 1e9)


def store_url(args: argparse.Namespace) -> str:
    """--store, else the config's store.url, else the default SQLite file."""
    from defectd.daemon.stages.store import default_store_url

    if args.store:
        return str(args.store)
    if args.config is not None:
        from defectd.daemon.config import ConfigError, load_config

        try:
            config = load_config(args.config)
        except ConfigError as exc:
            raise CommandError("; ".join(exc.problems)) from None
        if config.store.url:
            return config.store.url
    return default_store_url()


def run(args: argparse.Namespace) -> int:
    from defectd.daemon.store.backend import open_store
    from defectd.daemon.store.errors import StoreUnavailable

    url = store_url(args)
    if url.startswith("sqlite:") and not _sqlite_file(url).exists():
        raise CommandError(
            f"no defect store at {_sqlite_file(url)}: the daemon writes one when store.enabled "
            "is true; name another with --store URL or --config FILE"
        )
    try:
        store = open_store(url)
    except StoreUnavailable as exc:
        raise CommandError(f"the defect store does not answer: {exc}") from None
    try:
        if args.coils_command == "list":
            return _list(store, args)
        if args.coils_command == "show":
            return _show(store, args)
        return _report(store, args)
    finally:
        store.close()


def _sqlite_file(url: str) -> Path:
    from defectd.daemon.store.backend import sqlite_path

    return sqlite_path(url)


def _time(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _list(store: Store, args: argparse.Namespace) -> int:
    coils = store.coils(line=args.line, since_ns=args.since, grade=args.grade, limit=args.limit)
    if not coils:
        print("no coils match", file=sys.stderr)
        return 0
    print(f"{'coil':<16} {'line':<10} {'ended':<19} {'m':>8} {'defects':>8} {'gaps m':>7} grade")
    for coil in coils:
        print(
            f"{coil.coil_id:<16} {coil.line:<10} {_time(coil.ended_ns):<19} "
            f"{coil.inspected_m:>8.1f} {coil.defects:>8} {coil.gap_m:>7.1f} {coil.grade}"
        )
    return 0


def _coil(
    store: Store, args: argparse.Namespace
) -> tuple[CoilRecord, list[StripDefect], list[CoverageGap]]:
    """The coil `args.coil` names, its defects and its gaps; CommandError when it is not
    there."""
    coil = store.coil(args.coil, line=args.line)
    if coil is None:
        raise CommandError(f"no closed coil {args.coil!r} in the store: `defectd coils list`")
    defects = store.defects(coil.coil_id, line=coil.line)
    return coil, defects, store.gaps(coil.coil_id, line=coil.line)


def _show(store: Store, args: argparse.Namespace) -> int:
    coil, defects, gaps = _coil(store, args)
    print(f"coil {coil.coil_id} on {coil.line}: grade {coil.grade}")
    for reason in coil.grade_reasons:
        print(f"  because {reason}")
    print(
        f"  {_time(coil.started_ns)} → {_time(coil.ended_ns)} ({coil.end_reason}); "
        f"{coil.head_m:.1f}–{coil.tail_m:.1f} m, {coil.inspected_m:.1f} m inspected, "
        f"{coil.width_mm:.0f} mm wide, {coil.frames} frames"
    )
    print(f"  coverage gaps: {coil.gap_m:.2f} m not inspected ({len(gaps)} gaps)")
    for gap in gaps:
        print(
            f"    {gap.camera}: {gap.from_m:.2f}–{gap.to_m:.2f} m, {gap.frames} frames {gap.reason}"
        )
    if coil.anomalies:
        print("  anomalies: " + ", ".join(f"{kind} {count}" for kind, count in coil.anomalies))
    print(f"  {coil.defects} defects:")
    for count in coil.classes:
        print(
            f"    {count.class_name:<14} {count.count:>6}  {count.per_100m:8.2f} per 100 m  "
            f"{count.per_m2:8.3f} per m²  {count.area_mm2:10.1f} mm²"
        )
    largest = sorted(defects, key=lambda d: -d.area_mm2)[: args.defects]
    if largest:
        print(f"  largest {len(largest)}:")
    for defect in largest:
        print(
            f"    {defect.class_name:<14} at {defect.along_m[0]:8.2f} m, "
            f"{defect.across_mm[0]:7.1f}–{defect.across_mm[1]:7.1f} mm, "
            f"{defect.area_mm2:9.1f} mm², score {defect.max_score:.2f}, "
            f"{'+'.join(defect.cameras)}, {defect.frames} frame(s)"
        )
    return 0


def _report(store: Store, args: argparse.Namespace) -> int:
    from defectd.daemon.coils.report import write_report

    coil, defects, gaps = _coil(store, args)
    classes = tuple(count.class_name for count in coil.classes)
    crops = crops_dir(store_url(args))
    files = write_report(args.out, coil, defects, gaps, classes, crops)
    print(f"coil {coil.coil_id} (grade {coil.grade}): report in {args.out}")
    for path in vars(files).values():
        if isinstance(path, Path):
            print(f"  {path}")
    return 0


def crops_dir(url: str) -> Path | None:
    """Where the daemon saves crops for the store at `url` (beside a SQLite file; the state
    directory for PostgreSQL)."""
    from defectd.daemon.stages.store import crops_directory

    return crops_directory(url)
