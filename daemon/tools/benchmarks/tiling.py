"""The daemon's half of `defectd bench tiling`: wide frames through the whole pipeline.

The real `defectd run` (a subprocess, `tools.loopback`) takes synthetic frames of `frame`
(H, W) pushed as fast as it accepts them (``batching.policy: block``, nothing may be dropped)
and cuts, infers, stitches, post-processes and publishes them. Its frames/s is the slope of
the processed count in the status heartbeats while the sender runs; × tiles per frame, its
tiles/s, which the command sets beside the bare engine's tile rate measured in the same run
(`engines.benchmarks.tiling`). The simulator renders its frames once and only sends them
meanwhile, but it shares the machine's cores with the daemon.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from defectd.daemon.tools.benchmarks.pipeline import (
    CapacityRun,
    Heartbeats,
    push_config,
    run_phase,
)
from defectd.daemon.tools.loopback import DaemonProcess, Listener, LoopbackPorts


@dataclass(frozen=True)
class DaemonTiling:
    """Wide frames through the daemon at its maximum rate."""

    frame: tuple[int, int]  # H, W
    tiles_per_frame: int
    capacity: CapacityRun

    @property
    def frames_per_s(self) -> float:
        return self.capacity.frames_per_s

    @property
    def tiles_per_s(self) -> float:
        return self.capacity.frames_per_s * self.tiles_per_frame

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tiles_per_s": self.tiles_per_s}


def run_daemon_tiling(
    model_dir: Path | None,
    *,
    frame: tuple[int, int],
    tiles_per_frame: int,
    backend: str,
    threads: int | None,
    max_batch: int,
    overlap: int,
    seconds: float,
    workdir: Path,
    cameras: int = 1,
) -> DaemonTiling:
    """Push `frame`-sized synthetic frames from `cameras` cameras into a daemon for `seconds`
    (module docstring)."""
    engine: dict[str, Any] = {"backend": backend, "max_batch": max_batch}
    if threads is not None:
        engine["threads"] = threads
    ids = tuple(f"wide{i}" for i in range(cameras))
    ports = LoopbackPorts()
    config = push_config(ports, ids, engine, max_batch, 20.0, model_dir, frame)
    config["batching"]["tile_overlap"] = overlap
    workdir.mkdir(parents=True, exist_ok=True)
    with DaemonProcess(config, workdir, ports) as daemon:
        daemon.wait_ready(300.0)
        beats = Heartbeats()
        with Listener(ports.publish_endpoint, topics=(), on_status=beats.add) as listener:
            listener.wait_subscribed(10.0)
            capacity = run_phase(
                listener, beats, ports, ids, 0.0, seconds, backend, max_batch, frame=frame
            )
    return DaemonTiling(frame, tiles_per_frame, capacity)
