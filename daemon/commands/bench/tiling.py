"""`defectd bench tiling`: frames larger than the model, cut and stitched, against the bare
engine's tile rate."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from defectd.daemon.commands.bench.engine import add_engine_options
from defectd.daemon.commands.bench.record import add_common, positive, report

if TYPE_CHECKING:
    from defectd.daemon.tools.benchmarks.tiling import DaemonTiling


def frame_size(text: str) -> tuple[int, int]:
    """--frame 4096x1024 (width × height) → (1024, 4096) as (H, W)."""
    try:
        width, height = (int(part) for part in text.lower().replace("×", "x").split("x"))
    except ValueError:
        width = height = 0
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(
            f"--frame takes WIDTHxHEIGHT, e.g. 4096x1024; got {text!r}"
        )
    return height, width


def register(suites: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the tiling suite."""
    parser = suites.add_parser(
        "tiling",
        help="frames of another size than the model: tiles/s and frames/s against the bare engine",
        description="Time frames larger (or smaller) than the model's input the way the "
        "daemon runs them — cut into the engine's tiles, in engine batches, stitched back — "
        "against the bare engine on the same tiles, interleaved: tiles/s, frames/s and the "
        "share of the bare tile rate tiling keeps (target ≥ 90%). Then the same frames "
        "through a running daemon (receive, tile, infer, stitch, post-process, publish) at "
        "its maximum rate, against the same bare tile rate (--no-daemon skips it).",
    )
    add_engine_options(parser)
    parser.add_argument(
        "--frame",
        type=frame_size,
        default=(1024, 4096),
        metavar="WxH",
        help="frame size (default 4096x1024)",
    )
    parser.add_argument("--max-batch", type=int, default=16, help="engine batch in tiles (16)")
    parser.add_argument(
        "--overlap", type=int, default=0, help="tile overlap in px, as batching.tile_overlap (0)"
    )
    parser.add_argument("--seconds", type=float, default=6.0, help="timed seconds in all (6)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument(
        "--daemon",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the frames through a daemon for --seconds (default: yes)",
    )
    add_common(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from defectd.engines.benchmarks.tiling import format_markdown, run_tiling_bench
    from defectd.engines.model_card import default_model_dir

    for name in ("--seconds", "--rounds", "--max-batch", "--threads"):
        positive(name, getattr(args, name[2:].replace("-", "_")))
    if args.overlap < 0:
        from defectd.daemon.cli import CommandError

        raise CommandError(f"--overlap must be 0 or more, got {args.overlap}")
    backend = "onnxruntime" if args.backend == "auto" else args.backend
    result = run_tiling_bench(
        args.model or default_model_dir(),
        frame=args.frame,
        backend=backend,
        threads=args.threads,
        max_batch=args.max_batch,
        overlap=args.overlap,
        seconds=args.seconds,
        rounds=args.rounds,
    )
    sections, data = [format_markdown(result)], {"tiling": result.to_dict()}
    if args.daemon:
        import tempfile
        from pathlib import Path

        from defectd.daemon.tools.benchmarks.tiling import run_daemon_tiling

        print(f"tiling: {args.seconds:g} s of frames through a daemon", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="defectd-bench-tiling-") as workdir:
            daemon = run_daemon_tiling(
                args.model,
                frame=args.frame,
                tiles_per_frame=result.tiles_per_frame,
                backend=backend,
                threads=args.threads,
                max_batch=args.max_batch,
                overlap=args.overlap,
                seconds=args.seconds,
                workdir=Path(workdir),
            )
        sections.append(format_daemon(daemon, result.bare_tiles_per_s))
        data["daemon"] = {**daemon.to_dict(), "kept": daemon.tiles_per_s / result.bare_tiles_per_s}
    report(args, sections, data)
    return 0


def format_daemon(daemon: DaemonTiling, bare_tiles_per_s: float) -> str:
    """The daemon's row beside the bare engine's tile rate of the same run."""
    run = daemon.capacity
    kept = daemon.tiles_per_s / bare_tiles_per_s if bare_tiles_per_s else 0.0
    accounted = (
        "every frame sent processed"
        if run.accounted
        else f"**not all accounted**: {run.sent} sent, {run.processed} processed, "
        f"dropped {run.dropped}, lost {run.lost}"
    )
    return "\n".join(
        [
            f"Through the daemon ({run.sent} frames pushed in {run.seconds:g} s at its maximum "
            f"rate, `block` back-pressure; {accounted}):",
            "",
            "| path | tiles/s | frames/s |",
            "|---|---:|---:|",
            f"| daemon (receive, tile, infer, stitch, post-process, publish) | "
            f"{daemon.tiles_per_s:.1f} | {daemon.frames_per_s:.2f} |",
            "",
            f"The daemon keeps **{100 * kept:.1f} %** of the bare engine's tile rate.",
        ]
    )
