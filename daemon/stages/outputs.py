"""Output stages: the web view, the MQTT bridge and the OPC UA server, one process each.

Each subscribes to the publisher's internal feed (`RunPaths.events`, an ipc PUB that carries
every message the public PUB sends, without CURVE: it never leaves the machine's run
directory) and hands each decoded event to its `Output` (`daemon.outputs`). The feed is a PUB
socket, so an output that falls behind loses messages at its high-water mark (counted by the
``topic_seq`` gaps, `defectd_output_dropped_total{reason="feed"}`); the pipeline never waits.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable

import zmq

from defectd.daemon.config import DaemonConfig
from defectd.daemon.events import MessageError, decode_message
from defectd.daemon.metrics import Metrics, create_metrics
from defectd.daemon.outputs.base import Output
from defectd.daemon.stages.common import Reporter, StageSpec, serve, start_stage

log = logging.getLogger(__name__)

OUTPUT_KINDS = ("web", "mqtt", "opcua")
POLL_MS = 200
TICK_S = 1.0
FEED_HWM = 20_000
_DRAIN = 512


def enabled_outputs(config: DaemonConfig) -> tuple[str, ...]:
    """The output stages `config` turns on."""
    return tuple(kind for kind in OUTPUT_KINDS if getattr(config, kind).enabled)


# kind → (module, class): imported only when enabled (the mqtt and opcua extras)
_OUTPUTS = {
    "web": ("defectd.daemon.outputs.web", "WebView"),
    "mqtt": ("defectd.daemon.outputs.mqtt_bridge", "MqttBridge"),
    "opcua": ("defectd.daemon.outputs.opcua_server", "OpcUaServer"),
}


def make_output(kind: str, config: DaemonConfig) -> Output:
    """The output of `kind` for `config` (its module imported only here: extras)."""
    if kind not in _OUTPUTS:
        raise ValueError(f"unknown output {kind!r}; outputs are {', '.join(OUTPUT_KINDS)}")
    module, name = _OUTPUTS[kind]
    factory = getattr(importlib.import_module(module), name)
    classes = _classes(config)
    cameras = tuple(camera.id for camera in config.cameras)
    line = config.line.name
    output: Output
    if kind == "mqtt":
        output = factory(config.mqtt, line)
    elif kind == "opcua":
        output = factory(config.opcua, line, cameras, classes)
    else:
        from defectd.daemon.stages.store import default_store_url

        url = (config.store.url or default_store_url()) if config.store.enabled else None
        output = factory(config.web, url, line, cameras, classes)
    return output


def _classes(config: DaemonConfig) -> tuple[str, ...]:
    from defectd.engines.model_card import read_card

    return tuple(read_card(config.model.dir).classes)


class Feed:
    """Decoded events from the internal feed, with the gaps counted."""

    def __init__(self, socket: zmq.Socket[bytes]) -> None:
        self._socket = socket
        self._next: dict[str, int] = {}
        self.missed = 0
        self.unreadable = 0

    def drain(self, handle: Callable[[str, dict[str, object]], None], wait_ms: int) -> int:
        if not self._socket.poll(wait_ms):
            return 0
        for count in range(_DRAIN):
            try:
                parts = self._socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return count
            try:
                payload = decode_message(parts)
            except MessageError as exc:
                self.unreadable += 1
                log.warning("output feed: unreadable message skipped: %s", exc)
                continue
            topic = parts[0].decode("ascii")
            seq = int(str(payload["topic_seq"]))
            expected = self._next.get(topic)
            if expected is not None and seq > expected:
                self.missed += seq - expected
            self._next[topic] = seq + 1
            handle(topic, payload)
        return _DRAIN


def run_output(spec: StageSpec) -> None:
    """Entry point of an output stage (`spec.kind` names it): feed its output until SIGTERM."""
    stop = start_stage(spec)
    config = spec.config
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    reporter = Reporter(context, spec)
    metrics = create_metrics([camera.id for camera in config.cameras])
    socket = context.socket(zmq.SUB)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.RCVHWM, FEED_HWM)
    socket.setsockopt(zmq.SUBSCRIBE, b"")
    socket.connect(spec.paths.events)
    feed = Feed(socket)
    output = make_output(spec.kind, config)
    output.start()
    log.info("output %s started", spec.kind)
    reported = _Reported(spec.kind)
    next_tick = time.monotonic() + TICK_S

    def handle(topic: str, payload: dict[str, object]) -> None:
        output.stats.received += 1
        try:
            output.handle(topic, payload)
        except Exception:  # one bad event must not end the output
            log.exception("output %s failed on a message on %s; skipped", spec.kind, topic)
            output.stats.drop("error")

    def drain(wait_ms: int) -> int:
        nonlocal next_tick
        handled = feed.drain(handle, wait_ms)
        if time.monotonic() >= next_tick:
            output.tick()
            reported.update(output, feed, metrics)
            next_tick = time.monotonic() + TICK_S
        return handled

    try:
        serve(stop, reporter, drain, POLL_MS)
    finally:
        output.close()
        reported.update(output, feed, metrics)
        reporter.flush(final=True)
        reporter.close()
        socket.close()
        context.term()


class _Reported:
    """What has gone to the metrics already (the output's counts are totals)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.delivered = 0
        self.dropped: dict[str, int] = {}

    def update(self, output: Output, feed: Feed, metrics: Metrics) -> None:
        stats = output.stats
        dropped = dict(stats.dropped)
        if feed.missed:
            dropped["feed"] = feed.missed
        metrics.output_progress(
            self.kind,
            stats.delivered - self.delivered,
            {r: n - self.dropped.get(r, 0) for r, n in dropped.items()},
            stats.buffered,
            stats.connected,
        )
        self.delivered, self.dropped = stats.delivered, dropped
