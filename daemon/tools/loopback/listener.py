"""What the daemon publishes, read by a thread of its own: `Listener`, and `settled`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import zmq

from defectd.daemon.background import Background
from defectd.daemon.clients.subscriber import GapDetector
from defectd.daemon.events import MessageError, decode_message
from defectd.daemon.tools.loopback.line import LoopbackError
from defectd.daemon.topics import DEFECT, FRAME, STATUS, kind_of

_POLL_S = 0.02  # how often `until` asks again


@dataclass
class Collected:
    """What a `Listener` gathered; read it under `Listener.lock`."""

    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # in order
    frames: list[dict[str, Any]] = field(default_factory=list)
    defects: list[dict[str, Any]] = field(default_factory=list)
    status: dict[str, Any] | None = None
    statuses: int = 0
    unreadable: int = 0
    first_status_at: float | None = None  # monotonic, when the first heartbeat arrived


class Listener:
    """A SUB socket on the daemon's events, read by a thread of its own.

    `topics` are SUB prefixes (the daemon's PUB filters, so what is not subscribed costs
    nothing); status heartbeats always come, they show the subscription is in place.
    `on_frame` and `on_status` are called for each frame summary and heartbeat (from the
    listener's thread). Messages, frame summaries and defect events are kept only when `keep`
    says so (the pipeline bench counts at thousands per second and needs only the
    heartbeats). `strict`: an unreadable message is an error, raised by `until` and `close`,
    instead of a count. Use as a context manager: the thread runs inside the block.
    """

    def __init__(
        self,
        endpoint: str,
        topics: tuple[str, ...] = ("",),
        keep: bool = True,
        on_frame: Callable[[dict[str, Any]], None] | None = None,
        on_status: Callable[[dict[str, Any]], None] | None = None,
        strict: bool = False,
    ) -> None:
        self.endpoint = endpoint
        self.topics = topics
        self.keep = keep
        self.on_frame = on_frame
        self.on_status = on_status
        self.strict = strict
        self.lock = threading.Lock()
        self.collected = Collected()
        self.gaps = GapDetector()
        self.frame_count = 0
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._reader = Background(self._run, "listener")
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._closed = False

    def __enter__(self) -> Listener:
        self._reader.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_subscribed(self, timeout_s: float = 10.0) -> bool:
        """Until the first status heartbeat arrived (so the subscription is in place)."""
        return self._subscribed.wait(timeout_s)

    def last_status(self) -> dict[str, Any] | None:
        """The latest status heartbeat, None before the first."""
        with self.lock:
            return self.collected.status

    def messages(self) -> list[tuple[str, dict[str, Any]]]:
        """Every (topic, payload) kept so far, in the order they came."""
        with self.lock:
            return list(self.collected.messages)

    def of(self, kind: str) -> list[dict[str, Any]]:
        """The payloads kept of one kind (``frame``, ``defect``, ``status``), in order."""
        with self.lock:
            return [payload for topic, payload in self.collected.messages if kind_of(topic) == kind]

    def summaries(self) -> list[tuple[str, int]]:
        """(camera_id, seq) of each frame summary kept, in the order they came."""
        with self.lock:
            return [(str(f["camera_id"]), int(f["seq"])) for f in self.collected.frames]

    def forget(self) -> None:
        """Drop the messages, frame summaries and defect events kept so far (the latest
        status stays), so a long run does not hold them all."""
        with self.lock:
            self.collected.messages.clear()
            self.collected.frames.clear()
            self.collected.defects.clear()

    def until(self, done: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Until `done()` holds, asked every 20 ms from the calling thread; LoopbackError
        naming `what` after `timeout_s`, or what stopped the listener's thread."""
        deadline = time.monotonic() + timeout_s
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LoopbackError(f"timed out after {timeout_s:g} s waiting for {what}")
            if self._reader.started and not self._reader.is_alive():
                self._reader.result()  # raises what stopped the thread
                raise LoopbackError(f"the listener is closed: no more messages for {what}")
            time.sleep(min(_POLL_S, remaining))

    def close(self) -> None:
        """Stop the thread and close the socket (again: nothing); raise what the thread
        raised."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._reader.started:
            self._reader.wait(5)
        if not self._context.closed:
            self._context.term()
        if self._reader.started:
            self._reader.result(timeout_s=5)

    def _run(self) -> None:
        sock = self._context.socket(zmq.SUB)
        try:
            sock.setsockopt(zmq.RCVHWM, 1_000_000)  # a subscriber that falls behind would miss
            sock.setsockopt(zmq.LINGER, 0)
            for topic in (*self.topics, STATUS):  # heartbeats always: they say it is subscribed
                sock.setsockopt(zmq.SUBSCRIBE, topic.encode("ascii"))
            sock.connect(self.endpoint)
            while not self._stop.is_set():
                if not sock.poll(100, zmq.POLLIN):
                    continue
                while True:
                    try:
                        parts = sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self._take(parts)
        finally:
            sock.close(linger=0)

    def _take(self, parts: list[bytes]) -> None:
        try:
            payload = decode_message(parts)
        except MessageError:
            if self.strict:
                raise
            with self.lock:
                self.collected.unreadable += 1
            return
        topic = parts[0].decode("ascii")
        kind = kind_of(topic)
        with self.lock:
            self.gaps.observe(topic, payload)
            if self.keep:
                self.collected.messages.append((topic, payload))
            if kind == STATUS:
                self.collected.status = payload
                self.collected.statuses += 1
                if self.collected.first_status_at is None:
                    self.collected.first_status_at = time.monotonic()
                    self._subscribed.set()
            elif kind == FRAME:
                self.frame_count += 1
                if self.keep:
                    self.collected.frames.append(payload)
            elif kind == DEFECT and self.keep:
                self.collected.defects.append(payload)
        if kind == FRAME and self.on_frame is not None:
            self.on_frame(payload)
        elif kind == STATUS and self.on_status is not None:
            self.on_status(payload)


def settled(status: Mapping[str, Any] | None, sent: int) -> bool:
    """Whether a heartbeat shows every one of `sent` frames done: received or lost in
    transport, and nothing received still in flight."""
    if status is None:
        return False
    frames = status["frames"]
    dropped = sum(int(n) for n in frames["dropped"].values())
    received, processed = int(frames["received"]), int(frames["processed"])
    return received == processed + dropped and received + int(frames["lost"]) >= sent
