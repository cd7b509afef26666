"""The simulator's sending loop: sockets, pacing and the per-camera frame counters.

`Simulator(config).run(stop)` sends frames from N simulated cameras, each with its own
``seq`` counter (0, 1, 2, … per frame sent), paced by a monotonic clock against an absolute
schedule (frame n of a camera is due at start + n / fps, so no drift accumulates), until
`frames` per camera are sent, `seconds` have passed, or `stop` is set. One thread does all the
sending: ZeroMQ sockets must stay in the thread that made them, and one loop keeps the cameras
in step. Frame k of the run is ``k = seq × cameras + camera index``, so cameras show different
frames and a run is reproducible.

Sockets (docs/simulator.md): cameras that bind the same endpoint share one socket (a port can
be bound once; PUB messages carry the camera id as topic, so a subscriber can still pick
cameras); cameras that connect, or bind endpoints made different by placeholders, get one
socket each (a `_Link`), made CURVE when the config gives keys.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import zmq

from defectd.daemon.clients.simulator.config import (
    SimulatorConfig,
    SimulatorError,
    camera_endpoint,
)
from defectd.daemon.clients.simulator.sources import Picture, open_source
from defectd.daemon.clients.simulator.truth import TruthWriter, truth_image_id
from defectd.daemon.protocol import FrameHeader, Rejected, header_to_json
from defectd.engines.errors import InvalidInput, InvalidSetting

log = logging.getLogger(__name__)

_SEND_POLL_MS = 100  # a PUSH send blocked by back-pressure wakes this often to check `stop`


def _curve_setup(config: SimulatorConfig) -> Callable[[zmq.Socket[bytes]], None] | None:
    """What makes a camera socket CURVE (keys read once, before any socket), or None."""
    if config.curve_server_key is None:
        return None
    from defectd.daemon.curve import load_key_pair, load_public_key, make_client, make_server

    if config.bind:
        own = load_key_pair(config.curve_server_key)
        return lambda socket: make_server(socket, own)
    assert config.curve_client_key is not None  # __post_init__ checks they come together
    server = load_public_key(config.curve_server_key)
    keys = load_key_pair(config.curve_client_key)
    return lambda socket: make_client(socket, keys, server)


@dataclass(frozen=True)
class CameraStats:
    """What one simulated camera sent."""

    camera_id: str
    sent: int
    fps: float  # achieved: frames per second between its first and last send
    late: int  # times it fell over one frame period behind and restarted its schedule
    blocked_s: float  # seconds its sends waited on back-pressure (push with a full queue)


@dataclass(frozen=True)
class SimulatorResult:
    """A finished (or in-progress, for `progress`) run."""

    cameras: tuple[CameraStats, ...]
    elapsed_s: float
    endpoints: tuple[str, ...]
    stopped: bool = False  # ended by `stop`, not by frames or seconds
    truth_frames: int = 0  # frames written to the truth CSV

    @property
    def sent(self) -> int:
        return sum(camera.sent for camera in self.cameras)


@dataclass
class _Link:
    """One socket and the cameras (indices) that send on it."""

    socket: zmq.Socket[bytes]
    endpoint: str
    cameras: list[int] = field(default_factory=list)


@dataclass
class _Camera:
    index: int  # position in the camera list: frame k of the run is seq × cameras + index
    camera_id: str
    topic: bytes
    link: _Link
    due: float = 0.0  # monotonic time its next frame is due
    sent: int = 0  # also its next seq
    first: float = 0.0
    last: float = 0.0
    late: int = 0
    blocked: float = 0.0
    pending: Picture | None = None  # its next frame, prepared before it is due


class Simulator:
    """Simulated cameras sending frames to defectd; `run` blocks until done or stopped.

    `context` (default: a new one, terminated at the end) lets a caller share its ZeroMQ
    context; `clock` is the monotonic clock used for pacing; `progress` is called from the
    sending thread every `status_interval_s` with the run so far. `endpoints` holds the
    resolved endpoints (a ``*`` port replaced by the bound one) once `bound` is set.
    """

    def __init__(
        self,
        config: SimulatorConfig,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        progress: Callable[[SimulatorResult], None] | None = None,
    ) -> None:
        self.config = config
        self.source = open_source(config)  # fails on a bad folder before any socket opens
        if config.truth_out is not None and not self.source.has_truth:
            raise InvalidSetting(
                f"no truth to write for {self.source.describe()}: truth_out needs the synth "
                "source or a Severstal-layout folder (train.csv beside train_images/)"
            )
        self._context = context
        self._clock = clock
        self._progress = progress
        self.endpoints: tuple[str, ...] = ()
        self.bound = threading.Event()

    def run(self, stop: threading.Event | None = None) -> SimulatorResult:
        """Send until every camera sent `frames`, `seconds` passed, or `stop` is set."""
        stop = stop or threading.Event()
        context = self._context or zmq.Context()
        links: list[_Link] = []
        truth: TruthWriter | None = None
        try:
            cameras = self._open(context, links)
            self.endpoints = tuple(link.endpoint for link in links)
            self.bound.set()
            if self.config.wait_subscribers:
                self._wait_for_subscribers(links, cameras, stop)
            if self.config.truth_out is not None:
                truth = TruthWriter(self.config.truth_out)
            return self._send_all(cameras, stop, truth)
        finally:
            if truth is not None:
                truth.close()
            for link in links:
                link.socket.close(linger=self.config.effective_linger_ms)
            if self._context is None:
                context.term()

    def _open(self, context: zmq.Context[zmq.Socket[bytes]], links: list[_Link]) -> list[_Camera]:
        """Open the sockets into `links` (the caller closes them, also when this fails) and
        return the cameras."""
        config = self.config
        secure = _curve_setup(config)
        kind = zmq.PUSH if config.mode == "push" else zmq.PUB
        if config.wait_subscribers:
            kind = zmq.XPUB  # sends like PUB, and shows the subscriptions that arrive
        shared: dict[str, _Link] = {}
        cameras: list[_Camera] = []
        for index, camera_id in enumerate(config.cameras):
            endpoint = camera_endpoint(config.endpoint, index, camera_id)
            link = shared.get(endpoint) if config.bind else None
            if link is None:
                socket = context.socket(kind)
                links.append(_Link(socket, endpoint))  # before anything can fail
                link = links[-1]
                socket.setsockopt(zmq.SNDHWM, config.sndhwm)
                socket.setsockopt(zmq.LINGER, config.effective_linger_ms)
                if kind == zmq.PUSH:
                    socket.setsockopt(zmq.SNDTIMEO, _SEND_POLL_MS)
                if kind == zmq.XPUB:
                    socket.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscriber's, not only new
                if secure is not None:
                    secure(socket)
                try:
                    if config.bind:
                        socket.bind(endpoint)
                        link.endpoint = socket.getsockopt_string(zmq.LAST_ENDPOINT)
                    else:
                        socket.connect(endpoint)
                except zmq.ZMQError as exc:
                    verb, fix = "connect to", "write the endpoint as tcp://HOST:PORT"
                    if config.bind:
                        verb, fix = "bind", f"use a free port (tcp://HOST:* picks one) or {fix}"
                    raise SimulatorError(
                        f"camera {camera_id} cannot {verb} {endpoint}: {exc}; {fix}"
                    ) from None
                shared[endpoint] = link
            link.cameras.append(index)
            cameras.append(_Camera(index, camera_id, camera_id.encode("ascii"), link))
        for link in links:
            names = ", ".join(config.cameras[i] for i in link.cameras)
            verb = "bound to" if config.bind else "connected to"
            log.info("%s %s %s (cameras %s)", config.mode.upper(), verb, link.endpoint, names)
        return cameras

    def _wait_for_subscribers(
        self, links: list[_Link], cameras: list[_Camera], stop: threading.Event
    ) -> None:
        """Block until every camera's topic has `wait_subscribers` matching subscriptions.

        A SUB socket receives nothing sent before its subscription reached the publisher
        (ZeroMQ's slow joiner); XPUB shows the subscriptions as they arrive, so the first
        frame goes out only once the daemon will get it.
        """
        want = self.config.wait_subscribers
        counts = [0] * len(cameras)
        deadline = self._clock() + self.config.wait_timeout_s
        poller = zmq.Poller()
        for link in links:
            poller.register(link.socket, zmq.POLLIN)
        log.info("waiting for %d subscriber(s) per camera", want)
        while min(counts) < want:
            if stop.is_set():
                return
            remaining = deadline - self._clock()
            if remaining <= 0:
                short = [c.camera_id for c, n in zip(cameras, counts, strict=True) if n < want]
                raise SimulatorError(
                    f"no subscriber for camera(s) {', '.join(short)} after "
                    f"{self.config.wait_timeout_s:g} s on {', '.join(self.endpoints)}: start "
                    "the daemon with these camera ids and endpoints, or lower wait_subscribers"
                )
            for socket, _ in poller.poll(int(min(remaining, 0.1) * 1000) + 1):
                message = socket.recv()
                if not message or message[0] != 1:  # 1: subscribe, 0: unsubscribe
                    continue
                for index, camera in enumerate(cameras):
                    if camera.link.socket is socket and camera.topic.startswith(message[1:]):
                        counts[index] += 1

    def _send_all(
        self, cameras: list[_Camera], stop: threading.Event, truth: TruthWriter | None
    ) -> SimulatorResult:
        config = self.config
        period = 1.0 / config.fps if config.fps else 0.0
        for camera in cameras:  # every camera's first frame ready at the start: no stagger
            camera.pending = self.source.picture(camera.index, truth is not None)
        start = self._clock()
        deadline = start + config.seconds if config.seconds is not None else None
        for camera in cameras:
            camera.due = start
        next_status = start + config.status_interval_s
        stopped = False
        while True:
            active = [c for c in cameras if config.frames is None or c.sent < config.frames]
            if not active:
                break
            # Earliest due first; at fps 0 every camera is always due, so fewest sent first.
            camera = min(active, key=lambda c: (c.due, c.sent, c.index))
            now = self._clock()
            if deadline is not None and max(now, camera.due) >= deadline:
                break
            if now >= next_status:
                # Advance even without a progress callback: a stale next_status would make
                # the wait below return at once and spin a core.
                if self._progress is not None:
                    self._progress(self._result(cameras, now - start, stop.is_set(), truth))
                next_status = now + config.status_interval_s
            if camera.pending is None:
                # Rendered before the frame is due, so it leaves on time, not a render late.
                index = camera.sent * len(config.cameras) + camera.index
                camera.pending = self.source.picture(index, truth is not None)
                continue
            if camera.due > now:
                if stop.wait(min(camera.due, next_status) - now):
                    stopped = True
                    break
                continue
            if stop.is_set():
                stopped = True
                break
            if period and now - camera.due > period:
                camera.late += 1  # a stall: restart this camera's schedule rather than burst
                camera.due = now
            if not self._send(camera, camera.pending, stop, deadline, truth):
                stopped = stop.is_set()
                break
            camera.pending = None
            camera.due += period
        elapsed = self._clock() - start
        return self._result(cameras, elapsed, stopped, truth)

    def _send(
        self,
        camera: _Camera,
        picture: Picture,
        stop: threading.Event,
        deadline: float | None,
        truth: TruthWriter | None,
    ) -> bool:
        """Send `picture` as the camera's next frame; False when `stop` or the deadline came
        while it waited on back-pressure (it was not sent, and its seq stays unused)."""
        config = self.config
        seq = camera.sent
        coil_id = position_m = None
        if config.coil_frames:
            coil_id = config.coil_id(seq)
            rows = (seq % config.coil_frames) * picture.height
            position_m = round(rows * config.mm_per_px / 1000.0, 6)
        topic = [camera.topic] if config.mode == "pub" else []
        payload = picture.payload
        view = payload if isinstance(payload, bytes) else payload.data  # a view, not a copy
        tried = self._clock()
        blocked = False
        while True:
            try:
                header = FrameHeader(
                    camera.camera_id,
                    seq,
                    time.time_ns(),
                    picture.encoding,
                    picture.width,
                    picture.height,
                    coil_id=coil_id,
                    position_m=position_m,
                )
            except Rejected as exc:  # e.g. a folder image over 16384 px
                raise InvalidInput(f"{picture.name}: cannot be sent: {exc.detail}") from None
            try:
                # copy=False: ZeroMQ sends from the payload's own memory; pictures are never
                # written to after they are made, so nothing changes under a queued frame.
                camera.link.socket.send_multipart(
                    [*topic, header_to_json(header), view], copy=False
                )
                break
            except zmq.Again:  # PUSH with a full queue (SNDTIMEO passed): the daemon is behind
                blocked = True
                now = self._clock()
                if stop.is_set() or (deadline is not None and now >= deadline):
                    camera.blocked += now - tried
                    return False
        now = self._clock()
        if blocked:
            camera.blocked += now - tried
        if camera.sent == 0:
            camera.first = now
        camera.last = now
        camera.sent += 1
        if truth is not None and picture.truth is not None:
            truth.write(truth_image_id(camera.camera_id, seq), picture.truth)
        return True

    def _result(
        self,
        cameras: list[_Camera],
        elapsed: float,
        stopped: bool,
        truth: TruthWriter | None,
    ) -> SimulatorResult:
        stats = []
        for camera in cameras:
            span = camera.last - camera.first
            fps = (camera.sent - 1) / span if camera.sent > 1 and span > 0 else 0.0
            stats.append(
                CameraStats(camera.camera_id, camera.sent, fps, camera.late, camera.blocked)
            )
        return SimulatorResult(
            tuple(stats),
            elapsed,
            self.endpoints,
            stopped,
            truth.frames if truth is not None else 0,
        )
