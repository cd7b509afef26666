"""Shared helpers for the simulator tests: configs, receiving and grouping what arrives, and
running a simulator in a thread."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import replace

import zmq

from defectd.daemon.clients.simulator import Simulator, SimulatorConfig, SimulatorResult
from defectd.daemon.protocol import FrameHeader, read_message

SHAPE = (256, 1600)


def push_config(endpoint: str, **changes: object) -> SimulatorConfig:
    """Cameras a and b pushing 3 frames each, unpaced, to `endpoint`; `changes` on top."""
    base = SimulatorConfig(
        cameras=("a", "b"), fps=0, frames=3, mode="push", endpoint=endpoint, bind=False
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def receive(
    socket: zmq.Socket[bytes], has_topic: bool, timeout_s: float = 5.0
) -> list[list[bytes]]:
    """Every message that arrives, until none has come for a while."""
    messages: list[list[bytes]] = []
    while socket.poll(int(timeout_s * 1000)):
        messages.append(socket.recv_multipart())
        timeout_s = 0.5  # once frames flow, a short quiet spell means the run is over
    return messages


def headers_by_camera(messages: list[list[bytes]], has_topic: bool) -> dict[str, list[FrameHeader]]:
    """The headers of `messages` per camera id, in arrival order."""
    by_camera: dict[str, list[FrameHeader]] = defaultdict(list)
    for parts in messages:
        message = read_message(parts, has_topic)
        by_camera[message.header.camera_id].append(message.header)
    return by_camera


def run_in_thread(
    simulator: Simulator, stop: threading.Event
) -> tuple[threading.Thread, list[SimulatorResult]]:
    """`simulator.run(stop)` in a daemon thread, once its sockets are bound; the result
    list gets the run's result when it ends."""
    results: list[SimulatorResult] = []
    thread = threading.Thread(target=lambda: results.append(simulator.run(stop)), daemon=True)
    thread.start()
    assert simulator.bound.wait(10), "the simulator never bound its sockets"
    return thread, results
