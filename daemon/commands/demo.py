"""`defectd demo`: simulator + daemon + subscriber on loopback in one command (docs/daemon.md)."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from defectd.daemon.clients.liveline import LiveLine
from defectd.daemon.commands.output import STDOUT, add_json_option, emit_json, to_stdout
from defectd.daemon.commands.simulate import stop_on_signals
from defectd.engines.selection import CHOICES

if TYPE_CHECKING:
    from defectd.daemon.tools.demo import DemoSummary, Progress


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `demo` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="simulated cameras → the real daemon → a subscriber, on loopback; scored summary",
        description=(
            "Run a whole line on this machine: start `defectd run` (a subprocess, its log in "
            "--out), simulated cameras sending synthetic frames with known defects, and a "
            "subscriber. A live status line on stderr; at the end frames, rates, latency, "
            "defects by class and the Kaggle mean Dice and per-class recall of the published "
            "masks against the simulator's truth. Ctrl-C stops it early (with a summary)."
        ),
    )
    parser.add_argument(
        "--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)"
    )
    parser.add_argument(
        "--backend",
        choices=CHOICES,
        default="onnxruntime",
        help="engine backend (default onnxruntime: the CPU); null runs no model",
    )
    parser.add_argument("--model", type=Path, help="model directory (default: the bundled one)")
    parser.add_argument("--cameras", type=int, default=2, help="simulated cameras (default 2)")
    parser.add_argument("--fps", type=float, default=4.0, help="frames/s per camera (default 4)")
    parser.add_argument(
        "--seconds", type=float, help="send this long (default 25 unless --frames is given)"
    )
    parser.add_argument("--frames", type=int, help="frames per camera, then stop")
    parser.add_argument("--seed", type=int, default=0, help="synthetic line seed (default 0)")
    parser.add_argument(
        "--coil-frames",
        type=int,
        default=40,
        help="frames per coil and camera; the coils go to a defect store in OUT/state and "
        "each gets a report in OUT/coils (default 40; 0: no coils, no store)",
    )
    parser.add_argument("--max-batch", type=int, default=4, help="engine batch (default 4)")
    parser.add_argument(
        "--max-wait-ms", type=float, default=50.0, help="batching deadline (default 50)"
    )
    parser.add_argument("--threads", type=int, help="engine CPU threads (default: all)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when usable")
    add_json_option(parser, "the whole summary")
    parser.add_argument("--quiet", action="store_true", help="no live status line")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 when it ran to the end and the daemon exited cleanly, else 1."""
    from defectd.daemon.tools.demo import DemoConfig, run_demo
    from defectd.daemon.tools.demo_report import format_summary

    seconds = args.seconds
    if seconds is None and args.frames is None:
        seconds = 25.0
    config = DemoConfig(
        out=args.out,
        backend=args.backend,
        model=args.model,
        cameras=args.cameras,
        fps=args.fps,
        seconds=seconds,
        frames=args.frames,
        seed=args.seed,
        coil_frames=args.coil_frames,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        threads=args.threads,
        device=args.device,
    )
    status = None if args.quiet else LiveStatus(sys.stderr)
    print(
        f"defectd demo: starting the daemon ({config.backend}); its log: "
        f"{config.out / 'daemon.log'}",
        file=sys.stderr,
    )
    stop = threading.Event()
    with stop_on_signals(stop):
        summary = run_demo(config, stop, status)
    if status is not None:
        status.finish()
    if not to_stdout(args):
        print(format_summary(summary))
    emit_json(args, summary.to_dict())
    if args.json not in (None, STDOUT):
        print(f"summary JSON: {args.json}")
    return 0 if _clean(summary) else 1


def _clean(summary: DemoSummary) -> bool:
    return summary.daemon_exit == 0 and not summary.stopped and summary.summaries > 0


class LiveStatus:
    """The demo's one-line status on stderr (one plain line every 5 s off a terminal)."""

    def __init__(self, stream: TextIO, log_every_s: float = 5.0) -> None:
        self._line = LiveLine(stream, log_every_s)

    def __call__(self, progress: Progress) -> None:
        self._line.show(
            f"{progress.elapsed_s:5.1f} s: sent {progress.sent:,}, received "
            f"{progress.received:,}, processed {progress.processed:,}, dropped "
            f"{progress.dropped:,}, lost {progress.lost:,}, {progress.fps:.1f} fps, "
            f"defects {progress.defects:,}"
        )

    def finish(self) -> None:
        self._line.finish()
