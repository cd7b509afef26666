"""Publisher stage: the one PUB socket subscribers connect to.

It takes built events from the post-processing workers (and status heartbeats from the
supervisor) on its ipc inbox, numbers them per topic (`TopicSequencer`), and sends a frame's
defect events, then its summary, so a subscriber that sees ``frame.`` knows the frame is
complete. A PUB socket never blocks: a slow subscriber loses messages at ``publish.sndhwm``
(and sees the gap in ``topic_seq``), the pipeline never waits for it. A frame counts as
processed once its summary is sent.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import replace
from pathlib import Path

import zmq

from defectd.daemon.accounting import FrameEvent
from defectd.daemon.config import parse_endpoint
from defectd.daemon.curve import (
    RejectionWatch,
    load_allow_list,
    load_key_pair,
    make_server,
    start_authenticator,
)
from defectd.daemon.events import CoilEvent, StatusEvent, TopicSequencer, encode
from defectd.daemon.metrics import Metrics, create_metrics
from defectd.daemon.ratelimit import RateLimitedLog
from defectd.daemon.stages.common import (
    ControlInbox,
    Reporter,
    StageSpec,
    bind_ipc,
    serve,
    start_stage,
)
from defectd.daemon.stages.postprocess import Published

log = logging.getLogger(__name__)

POLL_MS = 100
_DRAIN = 256


class Publisher:
    """Encodes and sends; counts what it sent."""

    def __init__(
        self,
        socket: zmq.Socket[bytes],
        reporter: Reporter,
        metrics: Metrics,
        store: zmq.Socket[bytes] | None = None,
        feed: zmq.Socket[bytes] | None = None,
    ) -> None:
        self._socket = socket
        self._feed = feed  # outputs enabled: the internal PUB the output stages read
        self._store = store  # store.enabled: every published frame goes on to the store stage
        self._reporter = reporter
        self._metrics = metrics
        self._sequencer = TopicSequencer()
        self._errors = RateLimitedLog(log, period_s=10.0)

    def handle(self, item: object) -> None:
        if isinstance(item, Published):
            self._frame(item)
        elif isinstance(item, CoilEvent):
            self._send(encode(item, self._sequencer))
        elif isinstance(item, StatusEvent):
            self._send(encode(replace(item, publish_ns=time.time_ns()), self._sequencer))
        else:
            self._errors.error("type", "publisher got a %s, not events", type(item).__name__)

    def _frame(self, item: Published) -> None:
        summary = item.summary
        for event in item.defects:
            try:
                self._send(encode(event, self._sequencer))
            except ValueError as exc:  # a non-finite number: the summary still goes out
                self._errors.error("encode", "defect event not sent: %s", exc)
                continue
            self._metrics.defects_found(event.camera_id, event.class_name)
        publish_ns = time.time_ns()
        summary = replace(summary, publish_ns=publish_ns)
        self._send(encode(summary, self._sequencer))
        done = time.monotonic()
        self._metrics.frame_processed(summary.camera_id)
        self._metrics.latency("capture_to_publish", (publish_ns - summary.capture_ns) / 1e9)
        self._metrics.latency("receive_to_publish", done - item.received)
        self._reporter.frame(FrameEvent("processed", summary.camera_id, summary.seq, done))
        if self._store is not None:
            try:
                self._store.send_pyobj(replace(item, summary=summary), zmq.NOBLOCK)
            except zmq.Again:  # the store stage is behind: counted, never waited for
                self._metrics.store_dropped("queue_full", 1 + len(item.defects))

    def _send(self, parts: list[bytes]) -> None:
        # PUB drops at the high-water mark anyway; never wait for a subscriber
        with contextlib.suppress(zmq.Again):
            self._socket.send_multipart(parts, zmq.NOBLOCK)
        if self._feed is not None:
            with contextlib.suppress(zmq.Again):
                self._feed.send_multipart(parts, zmq.NOBLOCK)


def run_publisher(spec: StageSpec) -> None:
    """Entry point of the publisher: send until SIGTERM, then what is already queued."""
    stop = start_stage(spec)
    config = spec.config
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    reporter = Reporter(context, spec)
    metrics = create_metrics([camera.id for camera in config.cameras])
    inbox = context.socket(zmq.PULL)
    inbox.setsockopt(zmq.LINGER, 0)
    bind_ipc(inbox, spec.paths.publisher)
    pub = context.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, config.publish.sndhwm)
    pub.setsockopt(zmq.LINGER, 1000)  # the last events still go out at stop
    security = config.security
    auth = watch = None
    if security.curve:
        assert security.server_secret_key and security.subscriber_clients_dir  # parse_config
        make_server(pub, load_key_pair(Path(security.server_secret_key)))
        # Before the bind: without a ZAP handler every subscriber would be let in.
        auth = start_authenticator(context, Path(security.subscriber_clients_dir))
        watch = RejectionWatch(metrics.handshake_rejected)
        watch.watch(pub, "events")
        watch.start()
    if parse_endpoint(config.publish.bind).transport == "ipc":
        bind_ipc(pub, config.publish.bind)
    else:
        pub.bind(config.publish.bind)
    store = None
    if config.store.enabled:
        store = context.socket(zmq.PUSH)
        store.setsockopt(zmq.SNDHWM, config.store.queue)
        store.setsockopt(zmq.LINGER, 5000)  # the last frames still reach it at stop
        store.connect(spec.paths.store)
    feed = None
    if any(getattr(config, kind).enabled for kind in ("web", "mqtt", "opcua")):
        feed = context.socket(zmq.PUB)
        feed.setsockopt(zmq.SNDHWM, 20_000)
        feed.setsockopt(zmq.LINGER, 1000)
        bind_ipc(feed, spec.paths.events)
    publisher = Publisher(pub, reporter, metrics, store, feed)
    if security.curve:
        assert security.subscriber_clients_dir is not None
        allowed = len(load_allow_list(Path(security.subscriber_clients_dir)))
        log.info(
            "publishing events on %s (CURVE, %d subscriber keys)", config.publish.bind, allowed
        )
    else:
        log.info("publishing events on %s", config.publish.bind)

    control = ControlInbox(context, spec)

    def drain(wait_ms: int) -> int:
        update = control.poll()
        if update is not None:  # cameras added by a reload count under their own names
            metrics.set_cameras(camera.id for camera in update.config.cameras)
            reporter.applied(update.generation)
        if not inbox.poll(wait_ms):
            return 0
        for count in range(_DRAIN):
            try:
                item = inbox.recv_pyobj(zmq.NOBLOCK)
            except zmq.Again:
                return count
            publisher.handle(item)
        return _DRAIN

    try:
        serve(stop, reporter, drain, POLL_MS)
    finally:
        reporter.flush(final=True)
        reporter.close()
        inbox.close(linger=0)
        control.close()
        if watch is not None:
            watch.close()
        pub.close()
        if store is not None:
            store.close()
        if feed is not None:
            feed.close()
        if auth is not None:
            auth.stop()
        context.term()
