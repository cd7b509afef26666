"""The daemon's public event socket as the web view's feed, for `defectd web --connect`.

Inside the daemon the output stage hands the web view every event; outside it, this SUB
socket does (status, frames, defects, coils: what the line page shows). Messages that are not
defectd events are counted and skipped; the socket reconnects by itself when the daemon
restarts (ZeroMQ), and the heartbeat's age on the page says when nothing comes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from defectd.daemon.events import MessageError, decode_message
from defectd.engines.errors import InvalidSetting

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5560"
TOPICS = ("status", "frame.", "defect.", "coil.")
POLL_MS = 200
RCVHWM = 20_000
DRAIN = 512  # messages handled per wake-up, between ticks


@dataclass(frozen=True)
class FeedSettings:
    """Where the daemon publishes, and CURVE keys when it wants them (docs/security.md)."""

    endpoint: str = DEFAULT_ENDPOINT
    curve_server_key: Path | None = None  # the daemon's public .key
    curve_client_key: Path | None = None  # this subscriber's .key_secret

    def __post_init__(self) -> None:
        if (self.curve_server_key is None) != (self.curve_client_key is None):
            raise InvalidSetting(
                "CURVE needs both keys: --curve-server-key (the daemon's public .key) and "
                "--curve-client-key (this web view's .key_secret)"
            )


def run_feed(
    settings: FeedSettings,
    handle: Callable[[str, dict[str, Any]], None],
    stop: threading.Event,
    tick: Callable[[], None] | None = None,
    tick_s: float = 1.0,
) -> int:
    """Hand every event from the daemon to `handle` until `stop` is set; `tick` about every
    `tick_s`. How many messages were skipped as unreadable."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    socket = context.socket(zmq.SUB)
    unreadable = 0
    try:
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.RCVHWM, RCVHWM)
        if settings.curve_server_key is not None and settings.curve_client_key is not None:
            from defectd.daemon.curve import load_key_pair, load_public_key, make_client

            server = load_public_key(settings.curve_server_key)
            make_client(socket, load_key_pair(settings.curve_client_key), server)
        for topic in TOPICS:
            socket.setsockopt(zmq.SUBSCRIBE, topic.encode("ascii"))
        try:
            socket.connect(settings.endpoint)
        except zmq.ZMQError as exc:
            raise InvalidSetting(
                f"cannot connect to {settings.endpoint!r}: {exc}; give the daemon's publish "
                "endpoint as tcp://HOST:PORT (its publish.bind)"
            ) from None
        log.info("web view: events from %s", settings.endpoint)
        next_tick = time.monotonic() + tick_s
        while not stop.is_set():
            if socket.poll(POLL_MS, zmq.POLLIN):
                unreadable += _drain(socket, handle)
            if tick is not None and time.monotonic() >= next_tick:
                tick()
                next_tick = time.monotonic() + tick_s
    finally:
        socket.close(linger=0)
        context.term()
    return unreadable


def _drain(socket: zmq.Socket[bytes], handle: Callable[[str, dict[str, Any]], None]) -> int:
    """Hand on what waits (up to `DRAIN` messages); how many were unreadable."""
    unreadable = 0
    for _ in range(DRAIN):
        try:
            parts = socket.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            break
        try:
            payload = decode_message(parts)
        except MessageError as exc:
            unreadable += 1
            log.warning("web view: skipped a message: %s", exc)
            continue
        handle(parts[0].decode("ascii"), payload)
    return unreadable
