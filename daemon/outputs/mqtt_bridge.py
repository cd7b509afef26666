"""The MQTT bridge (the ``mqtt`` output): the daemon's events on MQTT topics of a broker.

=============================================  ===============================================
``<prefix>/<line>/<camera>/defect/<class>``    a defect event, the JSON as published
``<prefix>/<line>/<camera>/frame``             a frame summary (only with ``mqtt.frames``)
``<prefix>/<line>/coil/<coil_id>``             a coil closed
``<prefix>/<line>/status``                     retained: ``{"state": "online", ...}`` from each
                                               heartbeat; ``{"state": "offline"}`` as the last
                                               will and at a clean close
=============================================  ===============================================

Nothing here blocks the stage: `MqttBridge.handle` appends to a bounded buffer and returns.
paho's network loop runs in its own thread (``loop_start``) and reconnects by itself; a sender
thread hands the buffer to it in order, a window of messages at a time. A message leaves the
buffer only when the broker acknowledged it (QoS ≥ 1), so what was in flight when a connection
broke is sent again (paho re-sends it after the reconnect: at least once, never silently
lost). While the broker is away the buffer keeps the newest ``mqtt.buffer`` events and drops
the oldest (``dropped{reason="buffer_full"}``); heartbeats are state, not events: only the
latest waits, outside that count.

paho-mqtt is the `defectd[mqtt]` extra: `start` imports it, never the import of this module.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from defectd.daemon.config.schema import MqttSettings
from defectd.daemon.outputs.base import OutputStats
from defectd.daemon.topics import COIL, DEFECT, FRAME, SEPARATOR, STATUS, sanitise_segment
from defectd.engines.errors import InvalidSetting, MissingDependency

if TYPE_CHECKING:
    from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessageInfo
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)

INSTALL = "pip install 'defectd[mqtt]'"
OFFLINE = b'{"state":"offline"}'
MAX_IN_FLIGHT = 32  # messages handed to paho and not yet acknowledged, at most
CLOSE_WAIT_S = 2.0  # close(): how long acknowledgements of what is queued are waited for
AWAY_LOG_S = 60.0  # tick(): how often a broker that stays away is logged again
RECONNECT_S = (1, 30)  # paho's reconnect back-off, first and longest delay
_FORBIDDEN_IN_LEVEL = ("+", "#", "/", "\x00")


def import_paho() -> ModuleType:
    """The ``paho.mqtt.client`` module, or `MissingDependency` naming the install."""
    try:
        import paho.mqtt.client as mqtt
    except ImportError as error:
        raise MissingDependency(
            f"mqtt.enabled needs paho-mqtt 2, which is not installed: {INSTALL}"
        ) from error
    return mqtt


@dataclass(frozen=True)
class Route:
    """Where one event goes on MQTT."""

    topic: str
    retain: bool  # the status: a subscriber that joins later gets the last one at once
    event: bool  # counted in the buffer (defect, frame, coil); False: the status heartbeat


def check_prefix(prefix: str) -> str:
    """`prefix` unchanged, or `InvalidSetting` naming ``mqtt.topic_prefix`` and the fix."""
    levels = prefix.split("/")
    if prefix.startswith("$") or any(
        not level or any(c in level for c in _FORBIDDEN_IN_LEVEL) for level in levels
    ):
        raise InvalidSetting(
            f"mqtt.topic_prefix {prefix!r} cannot start MQTT topics: use one or more levels "
            "separated by / without + # or empty levels, not starting with $ (for example "
            "'defectd' or 'plant1/defectd')"
        )
    return prefix


def level(text: str) -> str:
    """`text` as one MQTT topic level: the daemon's segments are clean already
    (``A-Z a-z 0-9 _ -``), this makes sure no ``+ # /`` can widen or split a level."""
    return sanitise_segment(text)


def route(topic: str, prefix: str, line: str, *, frames: bool) -> Route | None:
    """The MQTT route of the daemon's `topic`; None for what the bridge does not send (frame
    summaries without `frames`, kinds it does not know)."""
    kind, *segments = topic.split(SEPARATOR)
    if kind == DEFECT and len(segments) == 3:
        topic_line, camera, class_name = map(level, segments)
        return Route(f"{prefix}/{topic_line}/{camera}/defect/{class_name}", False, True)
    if kind == FRAME and len(segments) == 2:
        if not frames:
            return None
        topic_line, camera = map(level, segments)
        return Route(f"{prefix}/{topic_line}/{camera}/frame", False, True)
    if kind == COIL and len(segments) == 2:
        topic_line, coil_id = map(level, segments)
        return Route(f"{prefix}/{topic_line}/coil/{coil_id}", False, True)
    if kind == STATUS and not segments:
        return Route(status_topic(prefix, line), True, False)
    return None


def status_topic(prefix: str, line: str) -> str:
    """``<prefix>/<line>/status``: the retained online/offline status of the line's daemon."""
    return f"{prefix}/{level(line)}/status"


def status_payload(heartbeat: Mapping[str, Any]) -> dict[str, Any]:
    """The compact retained status made from a ``defectd.status/1`` heartbeat."""
    publish_ns = heartbeat.get("publish_ns")
    moment = None
    if isinstance(publish_ns, int):
        stamp = datetime.fromtimestamp(publish_ns / 1e9, tz=UTC)
        moment = stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "state": "online",
        "ready": heartbeat.get("ready"),
        "fps": heartbeat.get("fps"),
        "frames": heartbeat.get("frames"),
        "engine": heartbeat.get("engine"),
        "time": moment,
    }


def encode(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, like the daemon's own wire format."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def read_password(path: str) -> str:
    """The password in `path` (its trailing newline stripped), or `InvalidSetting`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidSetting(
            f"mqtt.password_file {path}: cannot read it ({error}): give a readable file "
            "holding the broker password on one line (chmod 600, owned by the daemon's user)"
        ) from None
    password = text.removesuffix("\n").removesuffix("\r")
    if not password:
        raise InvalidSetting(
            f"mqtt.password_file {path} is empty: write the broker password on its first line"
        )
    return password


def check_ca_file(path: str) -> str:
    """`path` if it is a readable file, or `InvalidSetting` naming ``mqtt.ca_file``."""
    try:
        Path(path).read_bytes()
    except OSError as error:
        raise InvalidSetting(
            f"mqtt.ca_file {path}: cannot read it ({error.strerror or error}): give the PEM "
            "file of the CA that signed the broker's certificate, or leave ca_file out to "
            "trust the system's CAs"
        ) from None
    return path


@dataclass(frozen=True)
class _Message:
    topic: str
    payload: bytes
    retain: bool
    event: bool  # counted in `buffered` and the buffer limit
    counted: bool = True  # counted in `delivered` (not the bridge's own offline status)


class MqttBridge:
    """The ``mqtt`` output (`base.Output`): events to a broker, buffered while it is away.

    `reconnect_s`: paho's reconnect back-off, first and longest delay in seconds; `clock`: for
    `tick`'s periodic log lines.
    """

    def __init__(
        self,
        settings: MqttSettings,
        line: str,
        *,
        reconnect_s: tuple[int, int] = RECONNECT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.line = level(line)
        self.prefix = check_prefix(settings.topic_prefix)
        self.status_topic = status_topic(self.prefix, self.line)
        self.client_id = settings.client_id or f"defectd-{self.line}"
        self.window = max(1, min(MAX_IN_FLIGHT, settings.buffer // 2))
        self._reconnect_s = reconnect_s
        self._clock = clock
        self._stats = OutputStats()
        self._cond = threading.Condition()
        # All below is guarded by _cond.
        self._waiting: deque[_Message] = deque()  # events not handed to paho yet, oldest first
        self._status: _Message | None = None  # the newest status not handed to paho yet
        self._in_flight: dict[int, _Message] = {}  # paho's message id → not acknowledged yet
        self._handing: _Message | None = None  # in the sender's hands, between the two
        self._early: set[int] = set()  # ids acknowledged before publish() returned them
        self._events_in_flight = 0
        self._connected = False
        self._last_error: str | None = None
        self._stop_sender = False
        self._closed = False
        self._client: Client | None = None
        self._ok = self._no_connection = 0  # paho's MQTT_ERR_SUCCESS and _NO_CONN, at start
        self._sender: threading.Thread | None = None
        self._away_since: float | None = None
        self._away_logged = 0.0

    @property
    def stats(self) -> OutputStats:
        """Counts the stage exports; `buffered` and `connected` follow the broker live."""
        return self._stats

    @property
    def last_error(self) -> str | None:
        """Why the last connection attempt failed (None once connected), with the fix."""
        with self._cond:
            return self._last_error

    def start(self) -> None:
        """Check the files, then connect in paho's thread (a broker that is down is retried,
        not an error). `InvalidSetting` for an unreadable password or CA file,
        `MissingDependency` without paho."""
        if self._client is not None:
            raise RuntimeError("MqttBridge.start: started already")
        mqtt = import_paho()
        settings = self.settings
        password = None if settings.password_file is None else read_password(settings.password_file)
        if password is not None and settings.username is None:
            raise InvalidSetting("mqtt.username: give it with mqtt.password_file (or neither)")
        client: Client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=True,  # nothing to resume: the bridge subscribes to nothing
            protocol=mqtt.MQTTv311,
        )
        if settings.username is not None:
            client.username_pw_set(settings.username, password)
        if settings.tls:
            ca_file = None if settings.ca_file is None else check_ca_file(settings.ca_file)
            try:
                client.tls_set(ca_certs=ca_file)
            except (ssl.SSLError, OSError) as error:
                raise InvalidSetting(
                    f"mqtt.ca_file {ca_file}: not a PEM CA certificate ({error}): give the "
                    "CA that signed the broker's certificate"
                ) from None
        client.will_set(self.status_topic, OFFLINE, settings.qos, retain=True)
        client.reconnect_delay_set(*self._reconnect_s)
        client.max_inflight_messages_set(self.window)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._client = client
        self._ok, self._no_connection = mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN
        self._away_since = self._clock()
        log.info(
            "mqtt: publishing to %s:%d under %s/%s/ (QoS %d%s)",
            settings.host,
            settings.port,
            self.prefix,
            self.line,
            settings.qos,
            ", TLS" if settings.tls else "",
        )
        client.connect_async(settings.host, settings.port, settings.keepalive_s)
        client.loop_start()
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-send", daemon=True)
        self._sender.start()

    def handle(self, topic: str, payload: dict[str, Any]) -> None:
        """Queue one event for the broker (never waits for it)."""
        if self._client is None or self._closed:
            raise RuntimeError("MqttBridge.handle: call start() first, and not after close()")
        where = route(topic, self.prefix, self.line, frames=self.settings.frames)
        if where is None:
            return
        body = status_payload(payload) if not where.event else payload
        message = _Message(where.topic, encode(body), where.retain, where.event)
        with self._cond:
            if not message.event:
                self._status = message  # only the newest heartbeat matters
            else:
                self._waiting.append(message)
                self._sync_stats()
                # What is in flight cannot be called back: the oldest waiting ones go.
                excess = min(self._stats.buffered - self.settings.buffer, len(self._waiting))
                for _ in range(excess):
                    self._waiting.popleft()
                if excess > 0:
                    self._stats.drop("buffer_full", excess)
            self._sync_stats()
            self._cond.notify_all()

    def tick(self) -> None:
        """Log, once a minute, a broker that stays away and what waits for it."""
        with self._cond:
            away_since, error = self._away_since, self._last_error
            buffered, dropped = self._stats.buffered, self._stats.dropped.get("buffer_full", 0)
        now = self._clock()
        if away_since is None or self._closed:
            return
        if now - away_since >= AWAY_LOG_S and now - self._away_logged >= AWAY_LOG_S:
            self._away_logged = now
            log.warning(
                "mqtt: no broker at %s:%d for %.0f s (%s); %d messages buffered, %d dropped "
                "(mqtt.buffer %d)",
                self.settings.host,
                self.settings.port,
                now - away_since,
                error or "connecting",
                buffered,
                dropped,
                self.settings.buffer,
            )

    def close(self) -> None:
        """Publish the offline status, wait up to `CLOSE_WAIT_S` for what is queued to be
        acknowledged (the rest counts as ``dropped{reason="shutdown"}``), disconnect."""
        client, sender = self._client, self._sender
        with self._cond:
            if self._closed or client is None:
                self._closed = True
                return
            self._closed = True
            self._status = _Message(self.status_topic, OFFLINE, True, False, counted=False)
            self._cond.notify_all()
            self._cond.wait_for(
                lambda: not self._connected or not self._outstanding(), CLOSE_WAIT_S
            )
            self._sync_stats()
            left = self._stats.buffered
            if left:
                self._stats.drop("shutdown", left)
                log.warning("mqtt: %d messages not acknowledged by the broker at stop", left)
            self._stop_sender = True
            self._cond.notify_all()
        if sender is not None:
            sender.join(CLOSE_WAIT_S)
        client.disconnect()
        client.loop_stop()
        with self._cond:
            self._waiting.clear()
            self._in_flight.clear()
            self._events_in_flight = 0
            self._connected = False
            self._sync_stats()

    # The sender thread: buffer → paho, in order, at most `window` unacknowledged.

    def _send_loop(self) -> None:
        client = self._client
        assert client is not None
        while True:
            with self._cond:
                self._cond.wait_for(self._may_send)
                if self._stop_sender:
                    return
                if self._status is not None:
                    message, self._status = self._status, None
                else:
                    message = self._waiting.popleft()
                self._handing = message
            # Outside the lock: paho calls our callbacks holding its own locks.
            try:
                info = client.publish(
                    message.topic, message.payload, self.settings.qos, message.retain
                )
            except ValueError as error:  # a topic or payload paho refuses: a bug here
                log.error("mqtt: paho refused a message on %s: %s", message.topic, error)
                with self._cond:
                    self._handing = None
                    self._stats.drop("refused")
                    self._sync_stats()
                continue
            with self._cond:
                self._handing = None
                self._settle(message, info)
                self._sync_stats()
                self._cond.notify_all()

    def _may_send(self) -> bool:
        if self._stop_sender:
            return True
        pending = self._status is not None or bool(self._waiting)
        return self._connected and pending and len(self._in_flight) < self.window

    def _settle(self, message: _Message, info: MQTTMessageInfo) -> None:
        """After paho took `message`: delivered, waiting for its acknowledgement, or back in
        front of the buffer."""
        if info.rc not in (self._ok, self._no_connection):  # paho's own queue refused it
            self._stats.drop("refused")
            log.error("mqtt: paho refused a message on %s (error %s)", message.topic, info.rc)
            return
        if self.settings.qos == 0:
            # No acknowledgement at QoS 0: delivered once on a live connection.
            if info.rc == self._ok:
                self._stats.delivered += message.counted
            else:  # no connection: on_disconnect is on its way, wait for the next one
                self._connected = False
                self._put_back(message)
            return
        # NO_CONN at QoS ≥ 1: paho keeps it and sends it on the next connection.
        if info.mid in self._early:
            self._early.discard(info.mid)
            self._stats.delivered += message.counted
        else:
            self._in_flight[info.mid] = message
            self._events_in_flight += message.event

    def _put_back(self, message: _Message) -> None:
        if message.event:
            self._waiting.appendleft(message)
        elif self._status is None:
            self._status = message

    def _outstanding(self) -> int:
        waiting = len(self._waiting) + (self._status is not None) + (self._handing is not None)
        return waiting + len(self._in_flight)

    def _sync_stats(self) -> None:
        handing = self._handing is not None and self._handing.event
        self._stats.buffered = len(self._waiting) + self._events_in_flight + handing
        self._stats.connected = self._connected

    # paho's callbacks, in its network thread.

    def _on_connect(
        self,
        client: Client,
        userdata: Any,
        flags: ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._failed(self._refusal(str(reason)))
            return
        with self._cond:
            self._connected, self._last_error = True, None
            self._away_since = None
            buffered = self._stats.buffered
            self._sync_stats()
            self._cond.notify_all()
        log.info(
            "mqtt: connected to %s:%d; %d messages to send",
            self.settings.host,
            self.settings.port,
            buffered,
        )

    def _on_connect_fail(self, client: Client, userdata: Any) -> None:
        self._failed(
            f"cannot connect to the MQTT broker at {self.settings.host}:{self.settings.port} "
            "(it is down or unreachable, or the TLS handshake failed: check mqtt.host, "
            "mqtt.port, mqtt.tls and mqtt.ca_file); retrying"
        )

    def _on_disconnect(
        self,
        client: Client,
        userdata: Any,
        flags: DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._cond:
            was = self._connected
            self._connected = False
            if was:
                self._away_since = self._clock()
            self._sync_stats()
            self._cond.notify_all()
            closing = self._closed
        if was and not closing:
            log.warning(
                "mqtt: lost the broker at %s:%d (%s); buffering up to %d messages",
                self.settings.host,
                self.settings.port,
                reason,
                self.settings.buffer,
            )

    def _on_publish(
        self,
        client: Client,
        userdata: Any,
        mid: int,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self.settings.qos == 0:
            return  # counted when handed over: QoS 0 has no acknowledgement
        with self._cond:
            # MQTT 3.1.1 acknowledgements carry no reason: an acknowledged message is delivered.
            message = self._in_flight.pop(mid, None)
            if message is None:
                self._early.add(mid)
            else:
                self._events_in_flight -= message.event
                self._stats.delivered += message.counted
            self._sync_stats()
            self._cond.notify_all()

    def _refusal(self, reason: str) -> str:
        where = f"the MQTT broker at {self.settings.host}:{self.settings.port}"
        if "authori" in reason.lower() or "password" in reason.lower():
            fix = "check mqtt.username and the password in mqtt.password_file"
        elif "identifier" in reason.lower():
            fix = f"check mqtt.client_id ({self.client_id!r} is refused or taken)"
        else:
            fix = "see the broker's log"
        return f"{where} refused the connection: {reason}: {fix}; retrying"

    def _failed(self, error: str) -> None:
        with self._cond:
            repeated = error == self._last_error
            self._last_error = error
        if not repeated:
            log.error("mqtt: %s", error)
