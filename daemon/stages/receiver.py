"""Receiver stage: camera sockets → checked, decoded frames in shared-memory slots.

Each receiver process reads its share of the config's camera sockets (SUB connected to a
camera's PUB, or PULL bound for pushing cameras). Per message: `read_message` checks it
without copying, `decode_frame` turns it into a grey H×W view (raw) or array (jpeg/png), the
frame is copied once into a slot, its header extras go into the slot's note, and the slot is
committed READY. The inference process batches READY slots straight from the slot table; the
receiver only rings its doorbell. Nothing the network sends stops the loop: every problem is
a `Rejected`, counted by reason and logged rate-limited.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import zmq

from defectd.daemon.accounting import FrameEvent
from defectd.daemon.config import DaemonConfig, IngestSocket
from defectd.daemon.config.changes import assign_sockets
from defectd.daemon.curve import (
    KeyPair,
    RejectionWatch,
    load_key_pair,
    load_public_key,
    make_client,
    make_server,
    start_authenticator,
)
from defectd.daemon.decode import decode_frame
from defectd.daemon.metrics import Metrics, create_metrics
from defectd.daemon.protocol import FrameHeader, Rejected, read_message
from defectd.daemon.ratelimit import RateLimitedLog
from defectd.daemon.sequence import SequenceTracker
from defectd.daemon.slots import FrameMeta, SlotPool, SlotRef
from defectd.daemon.stages.common import (
    ControlInbox,
    Reporter,
    StageSpec,
    StopFlag,
    bind_ipc,
    start_stage,
)

log = logging.getLogger(__name__)

POLL_MS = 100  # how often an idle receiver looks at its stop flag
SLOT_WAIT_S = 0.1  # drop_oldest: how long a frame waits for a slot when nothing is droppable
_DRAIN = 64  # messages taken from one socket per turn, so one busy camera cannot starve others


@dataclass(frozen=True)
class FrameNote:
    """The header fields the events need and the slot table has no column for."""

    capture_ns: int
    receive_ns: int
    coil_id: str | None = None
    position_m: float | None = None

    def encode(self) -> bytes:
        return json.dumps(
            [self.capture_ns, self.receive_ns, self.coil_id, self.position_m],
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> FrameNote:
        capture_ns, receive_ns, coil_id, position_m = json.loads(data)
        return cls(int(capture_ns), int(receive_ns), coil_id, position_m)


def open_ingest_socket(
    context: zmq.Context[zmq.Socket[bytes]],
    group: IngestSocket,
    config: DaemonConfig,
    keys: KeyPair | None = None,
    watch: RejectionWatch | None = None,
) -> zmq.Socket[bytes]:
    """A SUB (connect, one subscription per camera id) or PULL (bind) socket for `group`.

    With `keys` (security.curve) a PULL is a CURVE server (the caller runs the ZAP handler)
    and a SUB a CURVE client of the camera's PUB; `watch` counts refused handshakes.
    """
    ingest = config.ingest
    sock = context.socket(zmq.SUB if group.mode == "connect" else zmq.PULL)
    if keys is not None:
        if group.mode == "connect":
            assert group.server_public_key is not None  # parse_config requires it
            make_client(sock, keys, load_public_key(Path(group.server_public_key)))
        else:
            make_server(sock, keys)
    if watch is not None:
        watch.watch(sock, "ingest", server=group.mode == "bind")
    sock.setsockopt(zmq.RCVHWM, ingest.rcvhwm)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RECONNECT_IVL, ingest.reconnect_ivl_ms)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, ingest.reconnect_ivl_max_ms)
    # Under `block` back-pressure the receiver stops reading, so the camera's heartbeat
    # replies wait behind queued frames and a heartbeat timeout would cut a live link and
    # lose what is queued on it: heartbeats only run with drop_oldest.
    if ingest.heartbeat_ivl_ms and config.batching.policy != "block":
        sock.setsockopt(zmq.HEARTBEAT_IVL, ingest.heartbeat_ivl_ms)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, ingest.heartbeat_timeout_ms)
    if group.mode == "connect":
        for camera in group.cameras:
            sock.setsockopt(zmq.SUBSCRIBE, camera.encode())
        sock.connect(group.endpoint)
    elif group.endpoint.startswith("ipc://"):
        bind_ipc(sock, group.endpoint)
    else:
        sock.bind(group.endpoint)
    return sock


class Receiver:
    """One receiver's per-message work; `handle` is the whole ingest path of one message."""

    def __init__(
        self,
        config: DaemonConfig,
        pool: SlotPool,
        reporter: Reporter,
        metrics: Metrics,
        doorbell: zmq.Socket[bytes] | None,
        stop: StopFlag,
    ) -> None:
        self._pool = pool
        self._reporter = reporter
        self._metrics = metrics
        self._doorbell = doorbell
        self._stop = stop
        self._tracker = SequenceTracker()
        self._warnings = RateLimitedLog(log, period_s=10.0)
        self.configure(config)

    def configure(self, config: DaemonConfig) -> None:
        """Take `config`'s cameras from the next message on (a reload)."""
        self._config = config
        self._shapes = {camera.id: (camera.height, camera.width) for camera in config.cameras}
        self._cameras = frozenset(camera.id for camera in config.cameras)
        sizes = [(group.height, group.width) for group in self._pool.spec.groups]
        # Each camera's slot group by its frame size (a camera added by a reload is in no
        # group's camera list; `plan_reload` lets it in only where its size has a group).
        self._groups = {cid: sizes.index(shape) for cid, shape in self._shapes.items()}

    def handle(self, parts: list[zmq.Frame], group: IngestSocket) -> None:
        """Check, decode and queue one received message; count it whatever happens."""
        received = time.monotonic()
        receive_ns = time.time_ns()
        try:
            message = read_message(
                parts, group.mode == "connect", group.cameras, self._config.ingest.max_frame_bytes
            )
            shape = self._shapes[message.header.camera_id]  # read_message checked the id
            image = decode_frame(message.header, message.payload, shape)
        except Rejected as exc:
            self._reject(exc)
            return
        header = message.header
        camera = header.camera_id
        self._sequence(header)
        self._metrics.frame_received(camera)
        self._reporter.frame(FrameEvent("received", camera, header.seq, received))
        meta = FrameMeta(camera, header.seq, received)
        ref = self._acquire(meta)
        if ref is None:
            return
        np.copyto(self._pool.frame(ref.slot), image)  # the one copy of the pixels
        note = FrameNote(header.capture_ns, receive_ns, header.coil_id, header.position_m)
        self._pool.write_note(ref, note.encode())
        if self._pool.commit(ref):
            self._ring()

    def _acquire(self, meta: FrameMeta) -> SlotRef | None:
        policy = self._pool.spec.policy
        while True:
            group = self._groups[meta.camera]
            acquired = self._pool.acquire(meta, block=True, timeout=SLOT_WAIT_S, group=group)
            if acquired.dropped is not None:
                self._drop(acquired.dropped, "queue_full")
            if acquired.ref is not None:
                return acquired.ref
            # block: the sender is slowed (we stop reading) until a slot frees, or we stop.
            if policy == "block" and not self._stop.requested:
                self._reporter.maybe_flush()
                continue
            self._drop(meta, "shutdown" if self._stop.requested else "queue_full")
            return None

    def _drop(self, meta: FrameMeta, reason: str) -> None:
        self._metrics.frame_dropped(meta.camera, reason)
        self._reporter.frame(FrameEvent("dropped", meta.camera, meta.seq, time.monotonic(), reason))

    def _reject(self, exc: Rejected) -> None:
        camera = exc.camera_id if exc.camera_id in self._cameras else None
        self._metrics.frame_received(camera or "")
        self._metrics.frame_dropped(camera, exc.reason)
        self._reporter.rejected(camera, exc.reason)
        self._warnings.warning(f"{camera}:{exc.reason}", "frame rejected: %s", exc)

    def _sequence(self, header: FrameHeader) -> None:
        outcome = self._tracker.feed(header.camera_id, header.seq)
        self._metrics.sequence(header.camera_id, outcome)
        if outcome.kind == "gap":
            self._reporter.lost(outcome.lost)
            self._warnings.warning(
                f"gap:{header.camera_id}",
                "camera %s: %d frames lost before seq %d",
                header.camera_id,
                outcome.lost,
                header.seq,
            )
        elif outcome.kind == "reset":
            self._warnings.warning(
                f"reset:{header.camera_id}",
                "camera %s restarted its numbering: seq %d after %s",
                header.camera_id,
                header.seq,
                outcome.previous,
            )

    def _ring(self) -> None:
        if self._doorbell is None:
            return
        # A full doorbell means the inference process is behind anyway: it polls the table too.
        with contextlib.suppress(zmq.Again):
            self._doorbell.send(b"", zmq.NOBLOCK)


class IngestSockets:
    """The sockets one receiver reads, kept in step with the config: on a reload, sockets of
    cameras added open, those of cameras removed close, and a SUB socket whose camera list
    changed only (un)subscribes; every other socket is left as it is."""

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        config: DaemonConfig,
        keys: KeyPair | None,
        watch: RejectionWatch | None,
    ) -> None:
        self._context = context
        self._config = config
        self._keys = keys
        self._watch = watch
        self._auth: object | None = None
        self.poller = zmq.Poller()
        self.open: dict[str, tuple[zmq.Socket[bytes], IngestSocket]] = {}

    def update(self, config: DaemonConfig, groups: list[IngestSocket]) -> list[str]:
        """Read `groups` from now on; what changed, one line each."""
        self._config = config
        changed = []
        wanted = {group.endpoint: group for group in groups}
        for endpoint, (sock, group) in list(self.open.items()):
            new = wanted.get(endpoint)
            if new is None or (new.mode, new.server_public_key) != (
                group.mode,
                group.server_public_key,
            ):
                self.poller.unregister(sock)
                sock.close(linger=0)
                del self.open[endpoint]
                changed.append(f"closed {endpoint}")
            elif new.cameras != group.cameras:
                if new.mode == "connect":
                    for camera in set(group.cameras) - set(new.cameras):
                        sock.setsockopt(zmq.UNSUBSCRIBE, camera.encode())
                    for camera in set(new.cameras) - set(group.cameras):
                        sock.setsockopt(zmq.SUBSCRIBE, camera.encode())
                self.open[endpoint] = (sock, new)
                changed.append(f"{endpoint} now carries {', '.join(new.cameras)}")
        for endpoint, group in wanted.items():
            if endpoint in self.open:
                continue
            if group.mode == "bind" and self._keys is not None and self._auth is None:
                security = config.security
                assert security.ingest_clients_dir is not None  # parse_config requires it
                # Before the first bind: without a ZAP handler every client would be let in.
                self._auth = start_authenticator(self._context, Path(security.ingest_clients_dir))
            sock = open_ingest_socket(self._context, group, config, self._keys, self._watch)
            self.open[endpoint] = (sock, group)
            self.poller.register(sock, zmq.POLLIN)
            changed.append(f"opened {endpoint}")
        return changed

    def close(self) -> None:
        for sock, _ in self.open.values():
            sock.close(linger=0)
        self.open.clear()
        if self._auth is not None:
            self._auth.stop()  # type: ignore[attr-defined]


def receiver_groups(config: DaemonConfig, spec: StageSpec) -> list[IngestSocket]:
    """The sockets receiver `spec.index` reads: by the supervisor's assignment, else (at
    start) round-robin over the config's sockets."""
    receivers = config.ingest.receivers
    assignment = dict(spec.assignment) or assign_sockets(
        tuple(group.endpoint for group in config.sockets), receivers
    )
    return [group for group in config.sockets if assignment.get(group.endpoint) == spec.index]


def run_receiver(spec: StageSpec) -> None:
    """Entry point of a receiver process: read sockets until SIGTERM; a `Reconfigure` opens
    and closes sockets for cameras added and removed."""
    stop = start_stage(spec)
    config = spec.config
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pool = SlotPool.attach(spec.pool)
    reporter = Reporter(context, spec)
    control = ControlInbox(context, spec)
    doorbell = context.socket(zmq.PUSH)
    doorbell.setsockopt(zmq.SNDHWM, 4)
    doorbell.setsockopt(zmq.LINGER, 0)
    doorbell.connect(spec.paths.doorbell)
    metrics = create_metrics([camera.id for camera in config.cameras])
    receiver = Receiver(config, pool, reporter, metrics, doorbell, stop)
    security = config.security
    keys = watch = None
    if security.curve:
        assert security.server_secret_key is not None  # parse_config requires it
        keys = load_key_pair(Path(security.server_secret_key))
        watch = RejectionWatch(metrics.handshake_rejected)
    sockets = IngestSockets(context, config, keys, watch)
    sockets.update(config, receiver_groups(config, spec))
    if watch is not None:
        watch.start()
    curve = " (CURVE)" if security.curve else ""
    log.info("%s reading %s%s", spec.name, ", ".join(sockets.open) or "nothing", curve)
    try:
        while not stop.requested:
            ready = dict(sockets.poller.poll(reporter.wait_ms(POLL_MS)))
            if not ready:
                reporter.flush_if_pending()
            for sock, group in list(sockets.open.values()):
                if sock not in ready:
                    continue
                for _ in range(_DRAIN):
                    if stop.requested:  # intake stops: what ZeroMQ still queues stays there
                        break
                    try:
                        parts = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    receiver.handle(parts, group)
            update = control.poll()
            if update is not None:
                spec = replace(spec, assignment=update.assignment)
                metrics.set_cameras(camera.id for camera in update.config.cameras)
                receiver.configure(update.config)
                for line in sockets.update(update.config, receiver_groups(update.config, spec)):
                    log.info("%s: %s (config generation %d)", spec.name, line, update.generation)
                reporter.applied(update.generation)
            reporter.maybe_flush()
    finally:
        if watch is not None:
            watch.close()
        sockets.close()
        control.close()
        doorbell.close(linger=0)
        reporter.flush(final=True)
        reporter.close()
        pool.close()
        context.term()
