"""`defectd simulate`: cameras that send frames to defectd over ZeroMQ (docs/simulator.md)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TextIO

from defectd.daemon.background import Background
from defectd.daemon.cli import CommandError
from defectd.daemon.clients.liveline import LiveLine
from defectd.daemon.commands.output import refuse_unused
from defectd.daemon.protocol import ENCODINGS

if TYPE_CHECKING:
    from defectd.daemon.clients.simulator import SimulatorConfig, SimulatorResult

_PUB_ENDPOINT = "tcp://127.0.0.1:5555"  # clients.simulator's defaults, kept here so that
_PUSH_ENDPOINT = "tcp://127.0.0.1:5556"  # `defectd --help` does not import zmq and OpenCV


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `simulate` subcommand."""
    parser = subparsers.add_parser(
        "simulate",
        help="simulated cameras: send synthetic or recorded frames to defectd over ZeroMQ",
        description=(
            "Send frames as N cameras would, in the frame protocol of docs/protocol.md: "
            "synthetic frames with known defects (and their truth, --truth-out) or the images "
            "of a folder. Runs until --frames per camera are sent, --seconds pass, or Ctrl-C."
        ),
    )
    source = parser.add_argument_group("frames")
    source.add_argument(
        "--source",
        default="synth",
        help="'synth' (default) or a folder of jpg/png images; a Severstal-layout folder "
        "(train.csv + train_images/) also gives truth",
    )
    source.add_argument("--seed", type=int, default=0, help="synthetic line seed (default 0)")
    source.add_argument(
        "--width", type=int, default=1600, help="synthetic frame width (default 1600)"
    )
    source.add_argument(
        "--height", type=int, default=256, help="synthetic frame height (default 256)"
    )
    source.add_argument(
        "--encoding",
        choices=ENCODINGS,
        help="payload encoding (default: mono8 for synth; for a folder, the files as read)",
    )
    source.add_argument("--jpeg-quality", type=int, default=95, help="when encoding jpeg")
    source.add_argument(
        "--pool",
        type=int,
        default=0,
        metavar="N",
        help="prepare N distinct frames once and cycle them, for high rates (default 0: "
        "render every frame)",
    )
    cameras = parser.add_argument_group("cameras")
    cameras.add_argument("--cameras", type=int, default=1, help="cameras cam0..camN-1")
    cameras.add_argument(
        "--camera-ids", type=_ids, metavar="A,B,...", help="camera ids instead of --cameras"
    )
    cameras.add_argument(
        "--fps", type=float, default=10.0, help="frames/s per camera; 0: as fast as possible"
    )
    cameras.add_argument("--frames", type=int, help="frames per camera, then stop")
    cameras.add_argument("--seconds", type=float, help="run this long, then stop")
    cameras.add_argument("--line", default="line1", help="line name, for the logs only")
    cameras.add_argument(
        "--coil-frames",
        type=int,
        default=0,
        metavar="K",
        help="send coil_id and position_m; a new coil every K frames (default 0: no coil)",
    )
    cameras.add_argument(
        "--mm-per-px",
        type=float,
        default=1.0,
        help="strip travel per frame row, for position_m (default 1.0)",
    )
    cameras.add_argument(
        "--long-scratches",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="synthetic line: a scratch running over 2–8 consecutive frames of a camera starts "
        "in this share of frames (default 0)",
    )
    transport = parser.add_argument_group("transport")
    transport.add_argument(
        "--mode",
        choices=("pub", "push"),
        default="pub",
        help="pub: never blocks, drops at the high-water mark (the line); push: the daemon's "
        "back-pressure slows the sender, nothing is lost (replays, tests). Default pub",
    )
    where = transport.add_mutually_exclusive_group()
    where.add_argument(
        "--bind",
        metavar="ENDPOINT",
        help=f"bind here (default for pub: {_PUB_ENDPOINT}); {{i}}, {{N+i}}, {{camera}} give "
        "each camera its own endpoint, e.g. tcp://127.0.0.1:{5555+i}",
    )
    where.add_argument(
        "--connect",
        metavar="ENDPOINT",
        help=f"connect here (default for push: {_PUSH_ENDPOINT}); one socket per camera",
    )
    transport.add_argument(
        "--sndhwm", type=int, default=100, help="frames queued per socket (default 100)"
    )
    transport.add_argument(
        "--linger",
        type=float,
        metavar="S",
        help="at the end, wait up to S seconds for queued frames to leave (default: 30 for "
        "push, whose frames must all arrive; 1 for pub)",
    )
    transport.add_argument(
        "--wait-subscribers",
        type=int,
        default=0,
        metavar="N",
        help="pub: send nothing until each camera has N subscriptions (the daemon's SUB "
        "counts once); avoids losing the first frames to ZeroMQ's slow joiner",
    )
    transport.add_argument(
        "--wait-timeout",
        type=float,
        default=30.0,
        help="give up waiting for subscribers after this many seconds (default 30)",
    )
    security = parser.add_argument_group("CURVE (docs/security.md)")
    security.add_argument(
        "--curve-server-key",
        type=Path,
        metavar="FILE",
        help="connecting (push): the daemon's public FILE.key; binding (pub): this camera's "
        "own FILE.key_secret, the simulator then being the CURVE server",
    )
    security.add_argument(
        "--curve-client-key",
        type=Path,
        metavar="FILE",
        help="connecting: this camera's FILE.key_secret (its .key must be in the daemon's "
        "security.ingest_clients_dir)",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--truth-out",
        type=Path,
        help="Kaggle-layout CSV of every frame sent, ImageId <camera_id>-<seq>.jpg",
    )
    output.add_argument("--quiet", action="store_true", help="no live status line on stderr")
    parser.set_defaults(handler=run)


def _ids(text: str) -> tuple[str, ...]:
    ids = tuple(part.strip() for part in text.split(","))
    if not all(ids):
        raise argparse.ArgumentTypeError(f"write camera ids separated by commas, got {text!r}")
    return ids


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """The `SimulatorConfig` the command line asks for (ValueError naming a bad option)."""
    from defectd.daemon.clients.simulator import SimulatorConfig

    if args.camera_ids is None and args.cameras < 1:
        raise CommandError(f"--cameras must be at least 1, got {args.cameras}")
    jpeg = args.encoding == "jpeg"  # otherwise frames go raw, or as the files were read
    refuse_unused(
        ("--cameras", args.cameras != 1, args.camera_ids is None, "with --camera-ids"),
        ("--seed", args.seed != 0, args.source == "synth", "with a folder --source"),
        ("--jpeg-quality", args.jpeg_quality != 95, jpeg, "unless frames are encoded as jpeg"),
        (
            "--wait-timeout",
            args.wait_timeout != 30.0,
            args.wait_subscribers > 0,
            "without --wait-subscribers",
        ),
    )
    cameras = args.camera_ids or tuple(f"cam{i}" for i in range(args.cameras))
    if args.bind is not None or args.connect is not None:
        bind, endpoint = args.bind is not None, args.bind or args.connect
    elif args.mode == "pub":
        bind, endpoint = True, _PUB_ENDPOINT
    else:
        bind, endpoint = False, _PUSH_ENDPOINT
    return SimulatorConfig(
        source=args.source,
        seed=args.seed,
        width=args.width,
        height=args.height,
        cameras=cameras,
        fps=args.fps,
        frames=args.frames,
        seconds=args.seconds,
        line=args.line,
        mode=args.mode,
        endpoint=endpoint,
        bind=bind,
        encoding=args.encoding,
        jpeg_quality=args.jpeg_quality,
        sndhwm=args.sndhwm,
        linger_ms=None if args.linger is None else round(args.linger * 1000),
        coil_frames=args.coil_frames,
        mm_per_px=args.mm_per_px,
        long_scratches=args.long_scratches,
        pool=args.pool,
        wait_subscribers=args.wait_subscribers,
        wait_timeout_s=args.wait_timeout,
        truth_out=args.truth_out,
        status_interval_s=0.5,
        curve_server_key=args.curve_server_key,
        curve_client_key=args.curve_client_key,
    )


def run(args: argparse.Namespace) -> int:
    """Send frames until done or Ctrl-C/SIGTERM; print a summary per camera."""
    from defectd.daemon.clients.simulator import Simulator

    config = config_from_args(args)
    status = None if args.quiet else StatusLine(sys.stderr, config.line)
    simulator = Simulator(config, progress=status)
    print(
        f"simulating line {config.line}: {len(config.cameras)} camera(s) from "
        f"{simulator.source.describe()}, {_rate(config.fps)}",
        file=sys.stderr,
    )
    stop = threading.Event()
    # The main thread only waits, so Ctrl-C and SIGTERM can stop the sender between frames.
    sender = Background(lambda: simulator.run(stop), "simulator")
    with stop_on_signals(stop):
        sender.start()
        while sender.is_alive():
            sender.wait(0.2)
    if status is not None:
        status.finish()
    result = sender.result()  # what the simulator raised is raised here
    print(format_summary(config, result))
    return 0


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Within the block, SIGINT (Ctrl-C) and SIGTERM set `stop`; a second one interrupts.

    Only the main thread can install handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class StatusLine:
    """The simulator's live one-line status on stderr (one plain line every 10 s off a
    terminal)."""

    def __init__(self, stream: TextIO, line: str, log_every_s: float = 10.0) -> None:
        self.line = line
        self._line = LiveLine(stream, log_every_s)

    def __call__(self, result: SimulatorResult) -> None:
        rates = ", ".join(f"{c.camera_id} {c.sent:,}" for c in result.cameras)
        fps = result.sent / result.elapsed_s if result.elapsed_s > 0 else 0.0
        text = f"{self.line}: {result.sent:,} frames in {result.elapsed_s:.1f} s, {fps:.1f} fps"
        self._line.show(text + f" ({rates})")

    def finish(self) -> None:
        self._line.finish()


def format_summary(config: SimulatorConfig, result: SimulatorResult) -> str:
    """The final report: frames and achieved rate per camera, where they went, the truth."""
    how = "stopped" if result.stopped else "done"
    verb = "bound" if config.bind else "connected to"
    endpoints = ", ".join(dict.fromkeys(result.endpoints))
    lines = [
        f"{how}: {result.sent:,} frames from {len(result.cameras)} camera(s) in "
        f"{result.elapsed_s:.2f} s ({config.mode} {verb} {endpoints})",
        f"{'camera':<16} {'frames':>8} {'fps':>8} {'late':>6} {'blocked s':>10}",
    ]
    for camera in result.cameras:
        lines.append(
            f"{camera.camera_id:<16} {camera.sent:>8,} {camera.fps:>8.2f} {camera.late:>6,} "
            f"{camera.blocked_s:>10.2f}"
        )
    if config.truth_out is not None:
        lines.append(f"truth of {result.truth_frames:,} frames: {config.truth_out}")
    return "\n".join(lines)


def _rate(fps: float) -> str:
    return f"{fps:g} fps per camera" if fps else "as fast as possible"
