"""The socket loop of `defectd tail`: subscribe to defectd's events and print them.

`run_tail` connects a SUB socket, prints one line per message (`clients.subscriber.format_event`,
or the message's JSON as received with ``json_lines``) and reports missed messages found by
`clients.subscriber.GapDetector`. It ends after `count` messages, after `timeout_s`, or when
`stop` is set; it polls, so `stop` takes effect within a tenth of a second.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

import zmq

from defectd.daemon.clients.subscriber import GapDetector, format_event, format_gap
from defectd.daemon.events import MessageError, decode_message
from defectd.engines.errors import InvalidSetting

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5560"
_POLL_MS = 100

Ending = Literal["count", "timeout", "stopped"]


@dataclass(frozen=True)
class TailConfig:
    """Where to listen, what to print, and when to stop."""

    endpoint: str = DEFAULT_ENDPOINT  # the daemon's publish endpoint (the daemon binds)
    topics: tuple[str, ...] = ("",)  # SUB prefixes; "" is everything
    json_lines: bool = False  # print each message's JSON as received, one per line
    count: int | None = None  # stop after this many messages
    timeout_s: float | None = None  # stop after this long
    utc: bool = False  # clock times in UTC instead of the local zone
    rcvhwm: int = 100_000  # messages queued before the tail itself drops (and sees gaps)
    # CURVE (docs/security.md): the daemon's public .key and this subscriber's .key_secret.
    curve_server_key: Path | None = None
    curve_client_key: Path | None = None

    def __post_init__(self) -> None:
        if not self.topics:
            raise InvalidSetting('give at least one topic prefix ("" for everything)')
        if self.count is not None and self.count < 1:
            raise InvalidSetting(f"count must be at least 1, got {self.count}")
        if self.timeout_s is not None and not self.timeout_s > 0:
            raise InvalidSetting(f"timeout must be positive seconds, got {self.timeout_s}")
        if self.rcvhwm < 1:
            raise InvalidSetting(f"rcvhwm must be at least 1, got {self.rcvhwm}")
        if (self.curve_server_key is None) != (self.curve_client_key is None):
            raise InvalidSetting(
                "CURVE needs both keys: the daemon's public .key (curve_server_key) and this "
                "subscriber's .key_secret (curve_client_key)"
            )


@dataclass(frozen=True)
class TailResult:
    """What one tail saw."""

    printed: int  # messages printed
    missed: int  # messages the gap detector found missing
    restarts: int  # publisher restarts seen (new run_id on a topic)
    unreadable: int  # messages that were not defectd events (skipped, reported on `err`)
    ended: Ending


def run_tail(
    config: TailConfig,
    out: TextIO,
    err: TextIO,
    stop: threading.Event | None = None,
    context: zmq.Context[zmq.Socket[bytes]] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> TailResult:
    """Print messages until `count`, `timeout_s` or `stop`; gaps go to `out` as lines starting
    with ``--`` (to `err` with `json_lines`, so `out` stays pure JSON lines)."""
    stop = stop or threading.Event()
    tz = dt.UTC if config.utc else None
    gap_stream = err if config.json_lines else out
    curve = None
    if config.curve_server_key is not None and config.curve_client_key is not None:
        from defectd.daemon.curve import load_key_pair, load_public_key

        curve = (load_public_key(config.curve_server_key), load_key_pair(config.curve_client_key))
    own_context = context is None
    context = context or zmq.Context()
    socket = context.socket(zmq.SUB)
    gaps = GapDetector()
    printed = unreadable = 0
    ended: Ending = "stopped"
    try:
        socket.setsockopt(zmq.RCVHWM, config.rcvhwm)
        socket.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            from defectd.daemon.curve import make_client

            make_client(socket, curve[1], curve[0])
        for topic in config.topics:
            socket.setsockopt(zmq.SUBSCRIBE, topic.encode("utf-8"))
        try:
            socket.connect(config.endpoint)
        except zmq.ZMQError as exc:
            raise InvalidSetting(
                f"cannot connect to {config.endpoint!r}: {exc}; write the daemon's publish "
                "endpoint as tcp://HOST:PORT"
            ) from None
        deadline = None if config.timeout_s is None else clock() + config.timeout_s
        while not stop.is_set():
            wait = _POLL_MS
            if deadline is not None:
                remaining = deadline - clock()
                if remaining <= 0:
                    ended = "timeout"
                    break
                wait = min(wait, int(remaining * 1000) + 1)
            if not socket.poll(wait, zmq.POLLIN):
                continue
            parts = socket.recv_multipart()
            try:
                payload = decode_message(parts)
            except MessageError as exc:
                unreadable += 1
                print(f"tail: skipped a message: {exc}", file=err, flush=True)
                continue
            topic = parts[0].decode("ascii")
            gap = gaps.observe(topic, payload)
            if gap is not None:
                print(f"-- {format_gap(gap)}", file=gap_stream, flush=True)
            line = (
                parts[1].decode("utf-8") if config.json_lines else format_event(topic, payload, tz)
            )
            print(line, file=out, flush=True)
            printed += 1
            if config.count is not None and printed >= config.count:
                ended = "count"
                break
    finally:
        socket.close(linger=0)
        if own_context:
            context.term()
    return TailResult(printed, gaps.total_missed, gaps.restarts, unreadable, ended)
