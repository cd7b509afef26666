"""`defectd camera`: the GenICam gateway — one GigE Vision / USB3 Vision camera, through
Aravis, published in the defectd protocol (docs/cameras.md)."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from typing import Any

import yaml

from defectd.daemon.cli import CommandError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `camera` subcommand."""
    parser = subparsers.add_parser(
        "camera",
        help="GenICam gateway: a GigE/USB3 Vision camera → defectd frames (needs Aravis)",
        description=(
            "Acquire from one GenICam camera through Aravis and publish its frames in the "
            "defectd protocol (PUB, or PUSH to the daemon's PULL): seq from the stream's frame "
            "id, capture time from the camera's clock mapped to wall-clock time, incomplete "
            "buffers counted and never sent, a lost camera reopened with back-off. One process "
            "per camera. Aravis: apt install aravis-tools gir1.2-aravis-0.8 python3-gi."
        ),
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--config", type=Path, help="the camera's YAML (docs/cameras.md)")
    action.add_argument("--list", action="store_true", help="list the cameras Aravis finds")
    parser.add_argument("--frames", type=int, help="stop after this many frames")
    parser.add_argument(
        "--metrics-port", type=int, help="serve the gateway's counters for Prometheus here"
    )
    parser.set_defaults(handler=run)


def _read(path: Path) -> Any:
    from defectd.daemon.clients.camera.gateway import CameraConfig

    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CommandError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(values, dict):
        raise CommandError(f"{path}: expected a mapping of keys (docs/cameras.md)")
    try:
        return CameraConfig.from_mapping(values, str(path))
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def counters(gateway: Any) -> Any:
    """A Prometheus registry reading the gateway's counts at every scrape."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import CounterMetricFamily

    class _Counts:
        def collect(self) -> Any:
            counts, camera = gateway.counts, gateway.config.id
            for name, value, text in (
                ("frames", counts.frames, "frames published"),
                ("incomplete_buffers", counts.incomplete, "buffers not complete, not sent"),
                ("resent_packets", counts.resent_packets, "GigE packets resent"),
                ("missing_packets", counts.missing_packets, "GigE packets never received"),
                ("reconnects", counts.reconnects, "times the camera was lost and reopened"),
                ("side_updates", counts.side_updates, "side-channel readings applied"),
                ("side_rejected", counts.side_rejected, "side-channel messages skipped"),
            ):
                family = CounterMetricFamily(f"defectd_camera_{name}", text, labels=["camera"])
                family.add_metric([camera], value)
                yield family

    registry = CollectorRegistry()
    registry.register(_Counts())
    return registry


def _serve_metrics(port: int, gateway: Any) -> None:
    from prometheus_client import start_http_server

    start_http_server(port, addr="127.0.0.1", registry=counters(gateway))


def run(args: argparse.Namespace) -> int:
    from defectd.daemon.clients.camera.aravis import import_aravis, list_devices
    from defectd.daemon.clients.camera.gateway import Gateway

    aravis = import_aravis()
    if args.list:
        found = list_devices(aravis)
        for device in found:
            print(
                f"{device['id']}: {device['vendor']} {device['model']}, serial "
                f"{device['serial']}, {device['protocol']} {device['address']}"
            )
        if not found:
            print("no camera found (check the cable, the network and docs/cameras.md)")
        return 0
    config = _read(args.config)
    gateway = Gateway(config, aravis)
    if args.metrics_port is not None:
        _serve_metrics(args.metrics_port, gateway)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    counts = gateway.run(stop, args.frames)
    print(
        f"{config.id}: {counts.frames} frames published, {counts.incomplete} incomplete "
        f"buffers, {counts.missing_packets} missing / {counts.resent_packets} resent packets, "
        f"{counts.reconnects} reconnects"
    )
    return 0
