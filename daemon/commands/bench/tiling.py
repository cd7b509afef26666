"""`defectd bench tiling`: frames larger than the model, cut and stitched, against the bare
engine's tile rate."""

from __future__ import annotations

import argparse

from defectd.daemon.commands.bench.engine import add_engine_options
from defectd.daemon.commands.bench.record import add_common, positive, report


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
        "share of the bare tile rate tiling keeps (target ≥ 90%).",
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
    report(args, [format_markdown(result)], {"tiling": result.to_dict()})
    return 0
