"""The MQTT bridge against a real Mosquitto broker and real paho subscribers: the topic and
payload of every event kind, the retained status and the last will, username and password,
TLS with a private CA, and the buffer while the broker is away (stopped, or killed with
messages in flight), then the real daemon end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from defectd.daemon.config.schema import MqttSettings
from defectd.daemon.outputs.mqtt_bridge import (
    MqttBridge,
    Route,
    check_prefix,
    route,
    status_payload,
)
from defectd.daemon.tools.loopback import (
    Camera,
    DaemonProcess,
    LoopbackPorts,
    free_port,
    line_config,
    metric,
)
from defectd.engines.errors import InvalidSetting
from tests.daemon.outputs.mosquitto import (
    Broker,
    Subscriber,
    missing,
    password_file,
    retained,
    tls_files,
)

SCHEMAS = Path(__file__).resolve().parents[3] / "docs" / "schemas"
RUN = "0123456789abcdef"
NS = 1_714_564_801_234_567_890  # 2024-05-01T12:00:01.234Z
STATUS_TOPIC = "defectd/line1/status"

try:
    import paho.mqtt.client

    NO_PAHO = None
except ImportError:
    NO_PAHO = "paho-mqtt is missing: pip install 'defectd[mqtt]'"
needs_paho = pytest.mark.skipif(NO_PAHO is not None, reason=NO_PAHO or "")
needs_broker = pytest.mark.skipif(missing() is not None, reason=missing() or "")
try:
    import paho.mqtt.client  # noqa: F401

    _NO_PAHO = None
except ImportError:
    _NO_PAHO = "paho-mqtt is not installed (pip install 'defectd[mqtt]')"
needs_paho = pytest.mark.skipif(_NO_PAHO is not None, reason=_NO_PAHO or "")


def defect(seq: int, class_name: str = "scratches") -> dict[str, Any]:
    return {
        "schema": "defectd.defect/1",
        "topic_seq": seq,
        "run_id": RUN,
        "line": "line1",
        "camera_id": "cam0",
        "seq": seq,
        "capture_ns": NS + seq,
        "frame_shape": [256, 1600],
        "class_id": 3,
        "class_name": class_name,
        "presence": 0.97,
        "area_px": 3900,
        "region_count": 1,
        "regions": [
            {
                "bbox": [410, 12, 220, 18],
                "area_px": 3900,
                "mean_score": 0.81,
                "max_score": 0.97,
                "centroid": [519.4, 20.8],
            }
        ],
        "model": "defectd-default 1.0.0",
        "coil_id": "C-0042",
        "position_m": 12.5,
    }


FRAME = {
    "schema": "defectd.frame/1",
    "topic_seq": 7,
    "run_id": RUN,
    "line": "line1",
    "camera_id": "cam0",
    "seq": 7,
    "capture_ns": NS,
    "receive_ns": NS + 2_000_000,
    "publish_ns": NS + 9_000_000,
    "latency_ms": 9.0,
    "daemon_latency_ms": 7.0,
    "classes": ["scratches"],
    "defect_count": 1,
    "batch_size": 4,
    "coil_id": "C-0042",
    "position_m": 12.5,
}
STATUS = {
    "schema": "defectd.status/1",
    "topic_seq": 3,
    "run_id": RUN,
    "publish_ns": NS,
    "uptime_s": 12.5,
    "fps": 24.96,
    "frames": {"received": 300, "processed": 298, "dropped": {"queue_full": 1}, "lost": 0},
    "queue_depth": 1,
    "slots": {"used": 2, "total": 32},
    "engine": {
        "backend": "onnxruntime",
        "device": "cpu",
        "precision": "fp32",
        "max_batch": 4,
        "model": "defectd-default 1.0.0",
        "classes": ["pits", "crazing", "scratches", "patches"],
    },
    "ready": True,
}
COIL = {
    "schema": "defectd.coil/1",
    "topic_seq": 0,
    "run_id": RUN,
    "line": "line1",
    "coil_id": "C-0042",
    "started_ns": NS,
    "ended_ns": NS + 60_000_000_000,
    "end_reason": "next_coil",
    "head_m": 0.0,
    "tail_m": 812.4,
    "inspected_m": 810.0,
    "width_mm": 1500.0,
    "frames": 1588,
    "defects": 1,
    "classes": [
        {
            "class_name": "scratches",
            "count": 1,
            "area_mm2": 975.0,
            "per_100m": 0.12,
            "per_m2": 0.0008,
        }
    ],
    "gap_m": 2.4,
    "largest": ["C-0042/1"],
    "grade": "A",
    "grade_reasons": [],
    "anomalies": {},
}
EVENTS = [
    ("defect.line1.cam0.scratches", defect(41)),
    ("frame.line1.cam0", FRAME),
    ("coil.line1.C-0042", COIL),
    ("status", STATUS),
]
ONLINE = {
    "state": "online",
    "ready": True,
    "fps": 24.96,
    "frames": STATUS["frames"],
    "engine": STATUS["engine"],
    "time": "2024-05-01T12:00:01.234Z",
}
OFFLINE = {"state": "offline"}

# The bridge in a process of its own, to be killed: it says nothing, the subscriber watches.
BRIDGE_PROCESS = """
import json, sys, time
from defectd.daemon.config.schema import MqttSettings
from defectd.daemon.outputs.mqtt_bridge import MqttBridge
bridge = MqttBridge(MqttSettings(**json.loads(sys.argv[1])), "line1")
bridge.start()
bridge.handle("status", json.loads(sys.argv[2]))
time.sleep(60)
"""


def settings(port: int, **overrides: Any) -> MqttSettings:
    return MqttSettings(enabled=True, host="127.0.0.1", port=port, **overrides)


@contextmanager
def bridge_on(mqtt: MqttSettings) -> Iterator[MqttBridge]:
    """A started bridge that reconnects every second, closed on the way out."""
    bridge = MqttBridge(mqtt, "line1", reconnect_s=(1, 1))
    bridge.start()
    try:
        yield bridge
    finally:
        bridge.close()


def until(done: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.02)
    raise AssertionError(f"no {what} after {timeout_s} s")


def send(bridge: MqttBridge, seqs: range) -> None:
    for seq in seqs:
        bridge.handle("defect.line1.cam0.scratches", defect(seq))


def seqs(subscriber: Subscriber) -> list[int]:
    """The defect events' seq numbers in arrival order, each once (QoS 1 may repeat one)."""
    seen: dict[int, None] = {}
    for message in subscriber.received("defectd/line1/cam0/defect/"):
        seen.setdefault(message.json()["seq"], None)
    return list(seen)


def states(subscriber: Subscriber) -> list[str]:
    return [m.json()["state"] for m in subscriber.received(STATUS_TOPIC)]


def test_the_payloads_here_follow_the_published_schemas() -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="pip install 'defectd[dev]'")
    for name, payload in (
        ("defect-event", defect(41)),
        ("frame-summary", FRAME),
        ("status-event", STATUS),
        ("coil-event", COIL),
    ):
        schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
        jsonschema.Draft202012Validator(schema).validate(payload)


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("defect.line1.cam0.scratches", Route("defectd/line1/cam0/defect/scratches", False, True)),
        ("frame.line1.cam0", Route("defectd/line1/cam0/frame", False, True)),
        ("coil.line1.C-0042", Route("defectd/line1/coil/C-0042", False, True)),
        ("status", Route(STATUS_TOPIC, True, False)),
        # A level can neither widen a subscription (+ #) nor split in two (/).
        ("defect.line1.cam+0.a#b/c", Route("defectd/line1/cam_0/defect/a_b_c", False, True)),
        ("defect.line1.cam0", None),
        ("heartbeat", None),
    ],
)
def test_route_of_each_daemon_topic(topic: str, expected: Route | None) -> None:
    assert route(topic, "defectd", "line1", frames=True) == expected


def test_frame_summaries_only_with_frames_and_prefixes_of_several_levels() -> None:
    assert route("frame.line1.cam0", "defectd", "line1", frames=False) is None
    assert route("status", "plant1/defectd", "line1", frames=False) == Route(
        "plant1/defectd/line1/status", True, False
    )
    assert check_prefix("plant1/defectd") == "plant1/defectd"
    for bad in ("", "plant/+/defectd", "defectd/#", "/defectd", "defectd/", "a//b", "$SYS"):
        with pytest.raises(InvalidSetting, match=r"mqtt\.topic_prefix"):
            check_prefix(bad)
    with pytest.raises(InvalidSetting, match=r"mqtt\.topic_prefix"):
        MqttBridge(settings(1883, topic_prefix="defectd/#"), "line1")


def test_status_is_compact_with_the_time_in_utc() -> None:
    assert status_payload(STATUS) == ONLINE


@needs_paho
def test_unreadable_password_or_ca_file_is_an_error_naming_the_key(tmp_path: Path) -> None:
    empty, not_pem = tmp_path / "empty", tmp_path / "ca.txt"
    empty.write_text("\n")
    not_pem.write_text("not a certificate\n")
    gone = str(tmp_path / "gone")
    cases: list[tuple[dict[str, Any], str]] = [
        (dict(username="u", password_file=gone), "mqtt.password_file .*cannot read it"),
        (dict(username="u", password_file=str(empty)), "mqtt.password_file .* is empty"),
        (dict(tls=True, ca_file=gone), "mqtt.ca_file .*cannot read it.*leave ca_file out"),
        (dict(tls=True, ca_file=str(not_pem)), "mqtt.ca_file .*not a PEM CA certificate"),
    ]
    for overrides, message in cases:
        bridge = MqttBridge(settings(free_port(), **overrides), "line1")
        with pytest.raises(InvalidSetting, match=message):
            bridge.start()
        bridge.close()  # after a failed start: nothing to do, no error


@needs_broker
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_every_event_kind_on_its_topic_then_offline_at_close(tmp_path: Path, qos: int) -> None:
    with (
        Broker(tmp_path / "broker") as broker,
        Subscriber(broker.port, ("defectd/#",)) as subscriber,
    ):
        with bridge_on(settings(broker.port, qos=qos, frames=True)) as bridge:
            until(lambda: bridge.stats.connected, 5, "connection")
            for topic, payload in EVENTS:
                bridge.handle(topic, payload)
            subscriber.until(lambda: len(subscriber.received()) >= 4, 5, "4 messages")
            until(lambda: bridge.stats.delivered == 4, 5, "4 acknowledgements")
            got = {m.topic: m.json() for m in subscriber.received()}
            assert got == {
                "defectd/line1/cam0/defect/scratches": defect(41),
                "defectd/line1/cam0/frame": FRAME,
                "defectd/line1/coil/C-0042": COIL,
                STATUS_TOPIC: ONLINE,
            }
            # Only the status is retained: a subscriber that joins later gets it at once.
            late = retained(broker.port, "defectd/#")
            assert (late.topic, late.retain, late.json()) == (STATUS_TOPIC, True, ONLINE)
        subscriber.until(lambda: states(subscriber) == ["online", "offline"], 5, "offline")
        assert retained(broker.port, STATUS_TOPIC).json() == OFFLINE
    assert bridge.stats.delivered == 4  # the bridge's own offline status is not an event
    assert bridge.stats.dropped == {}
    assert (bridge.stats.buffered, bridge.stats.connected) == (0, False)


@needs_broker
def test_last_will_offline_when_the_bridge_process_dies(tmp_path: Path) -> None:
    with (
        Broker(tmp_path / "broker") as broker,
        Subscriber(broker.port, (STATUS_TOPIC,)) as subscriber,
    ):
        mqtt = {"enabled": True, "host": "127.0.0.1", "port": broker.port}
        process = subprocess.Popen(
            [sys.executable, "-c", BRIDGE_PROCESS, json.dumps(mqtt), json.dumps(STATUS)]
        )
        try:
            subscriber.until(lambda: states(subscriber) == ["online"], 20, "online status")
            process.kill()  # no close(), no DISCONNECT: the broker sends the last will
            process.wait(5)
            subscriber.until(lambda: states(subscriber) == ["online", "offline"], 5, "the will")
        finally:
            process.kill()
            process.wait(5)
        assert retained(broker.port, STATUS_TOPIC).json() == OFFLINE


@needs_broker
def test_username_and_password(tmp_path: Path) -> None:
    users = password_file(tmp_path / "passwd", {"defectd": "s3cret", "historian": "h1st"})
    right, wrong = tmp_path / "right", tmp_path / "wrong"
    right.write_text("s3cret\n")
    wrong.write_text("guess\n")
    extra = [f"password_file {users}"]
    with (
        Broker(tmp_path / "broker", anonymous=False, extra=extra) as broker,
        Subscriber(
            broker.port, ("defectd/#",), username="historian", password="h1st"
        ) as subscriber,
    ):
        with bridge_on(settings(broker.port, username="defectd", password_file=str(right))) as ok:
            send(ok, range(1))
            subscriber.until(lambda: seqs(subscriber) == [0], 5, "the event")
        assert ok.last_error is None
        # A wrong password is refused by the broker: a clear error, retried (the broker's
        # password file may be fixed without a restart), the events kept meanwhile.
        mqtt = settings(broker.port, username="defectd", password_file=str(wrong))
        with bridge_on(mqtt) as refused:
            send(refused, range(1, 3))
            until(lambda: refused.last_error is not None, 5, "refusal")
            error = refused.last_error or ""
            assert f"127.0.0.1:{broker.port} refused the connection" in error
            assert "mqtt.username and the password in mqtt.password_file" in error
            time.sleep(1.5)  # at least one retry
            assert (refused.stats.connected, refused.stats.buffered) == (False, 2)
        assert refused.stats.dropped == {"shutdown": 2}
        assert seqs(subscriber) == [0]


@needs_broker
def test_tls_with_a_private_ca(tmp_path: Path) -> None:
    files = tls_files(tmp_path / "tls")
    extra = [f"cafile {files.ca}", f"certfile {files.certificate}", f"keyfile {files.key}"]
    with (
        Broker(tmp_path / "broker", extra=extra) as broker,
        Subscriber(broker.port, ("defectd/#",), ca_file=files.ca) as subscriber,
    ):
        with bridge_on(settings(broker.port, tls=True, ca_file=str(files.ca))) as bridge:
            send(bridge, range(1))
            subscriber.until(lambda: seqs(subscriber) == [0], 5, "the event over TLS")
        # Trusting only the system's CAs, the handshake fails: said, retried, nothing sent.
        with bridge_on(settings(broker.port, tls=True)) as untrusted:
            send(untrusted, range(1, 2))
            until(lambda: untrusted.last_error is not None, 5, "TLS failure")
            assert "TLS handshake" in (untrusted.last_error or "")
            assert not untrusted.stats.connected
        assert seqs(subscriber) == [0]


@needs_paho
def test_without_a_broker_the_newest_wait_and_the_oldest_are_dropped() -> None:
    port = free_port()  # nothing listens there
    with bridge_on(settings(port, buffer=3)) as bridge:
        send(bridge, range(5))
        bridge.handle("status", STATUS)  # the status waits apart, only the newest
        bridge.handle("status", STATUS)
        assert bridge.stats.dropped == {"buffer_full": 2}
        assert (bridge.stats.buffered, bridge.stats.connected) == (3, False)
        until(lambda: bridge.last_error is not None, 5, "connection failure")
        assert f"cannot connect to the MQTT broker at 127.0.0.1:{port}" in (bridge.last_error or "")
    assert bridge.stats.dropped == {"buffer_full": 2, "shutdown": 3}
    assert (bridge.stats.buffered, bridge.stats.delivered) == (0, 0)


@needs_paho
def test_a_broker_that_stays_away_is_logged_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    bridge = MqttBridge(settings(free_port(), buffer=3), "line1", clock=lambda: now[0])
    bridge.start()
    try:
        send(bridge, range(5))
        with caplog.at_level("WARNING", logger="defectd.daemon.outputs.mqtt_bridge"):
            for now[0] in (130.0, 161.0, 190.0, 221.0):
                bridge.tick()
        away = [r.getMessage() for r in caplog.records if "no broker" in r.getMessage()]
        assert len(away) == 2  # at 61 s and at 121 s
        assert "for 61 s" in away[0] and "3 messages buffered, 2 dropped" in away[0]
    finally:
        bridge.close()


@needs_broker
def test_broker_restart_delivers_the_buffer_in_order_and_counts_what_it_dropped(
    tmp_path: Path,
) -> None:
    # The historian keeps a persistent session on a broker that saves it at a stop: what the
    # bridge sends after the restart waits there until the historian is back, whichever of
    # the two reconnects first.
    with (
        Broker(tmp_path / "broker", persistent=True) as broker,
        Subscriber(
            broker.port, ("defectd/#",), client_id="historian", persistent=True
        ) as historian,
        bridge_on(settings(broker.port, buffer=20)) as bridge,
    ):
        send(bridge, range(5))
        historian.until(lambda: seqs(historian) == list(range(5)), 5, "events 0-4")
        until(lambda: bridge.stats.delivered == 5, 5, "5 acknowledgements")
        broker.stop()
        until(lambda: not bridge.stats.connected, 5, "the bridge noticing")
        send(bridge, range(5, 35))  # 30 events into a buffer of 20
        bridge.handle("status", STATUS)
        assert bridge.stats.dropped == {"buffer_full": 10}
        assert bridge.stats.buffered == 20
        broker.start()
        expected = [*range(5), *range(15, 35)]
        historian.until(lambda: seqs(historian) == expected, 15, "events 0-4 and 15-34")
        until(lambda: bridge.stats.delivered == 5 + 20 + 1, 5, "every acknowledgement")
        assert (bridge.stats.buffered, bridge.stats.connected) == (0, True)
        assert bridge.stats.dropped == {"buffer_full": 10}
        assert states(historian)[-1] == "online"


@needs_broker
def test_messages_in_flight_when_the_broker_dies_are_sent_again(tmp_path: Path) -> None:
    with (
        Broker(tmp_path / "broker", persistent=True) as broker,
        Subscriber(
            broker.port, ("defectd/#",), client_id="historian", persistent=True
        ) as historian,
        bridge_on(settings(broker.port, buffer=100)) as bridge,
    ):
        send(bridge, range(3))
        historian.until(lambda: seqs(historian) == [0, 1, 2], 5, "events 0-2")
        until(lambda: bridge.stats.delivered == 3, 5, "3 acknowledgements")
        time.sleep(1.2)  # the broker saves its sessions every second
        broker.freeze()  # takes the next events on its socket, never reads nor acks them
        send(bridge, range(3, 13))
        time.sleep(0.5)
        assert (bridge.stats.delivered, bridge.stats.buffered) == (3, 10)
        assert bridge.stats.connected  # nothing tells the bridge yet
        broker.kill()
        until(lambda: not bridge.stats.connected, 5, "the bridge noticing")
        assert bridge.stats.buffered == 10  # in flight, not acknowledged: kept
        broker.start()
        historian.until(lambda: seqs(historian) == list(range(13)), 15, "events 0-12")
        until(lambda: bridge.stats.delivered == 13, 5, "every acknowledgement")
        assert bridge.stats.dropped == {}
        assert bridge.stats.buffered == 0


@needs_broker
@pytest.mark.slow
def test_the_daemon_publishes_defects_frames_and_status_on_mqtt(tmp_path: Path) -> None:
    from defectd.engines.synth import SyntheticLine

    ports = LoopbackPorts()
    with Broker(tmp_path / "broker") as broker:
        config = line_config(
            ports,
            ("cam0",),
            push=True,
            engine={"backend": "onnxruntime", "max_batch": 4, "threads": 1},
            sections={
                "batching": {"max_wait_ms": 10.0, "policy": "block"},
                "publish": {"status_interval_s": 0.2},
                "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port, "frames": True},
            },
        )
        line = SyntheticLine(13)
        with (
            Subscriber(broker.port, ("defectd/line1/#",)) as subscriber,
            DaemonProcess(config, tmp_path, ports) as daemon,
            Camera(ports.camera_endpoint) as camera,
        ):
            daemon.wait_ready()
            subscriber.until(
                lambda: any(m.json().get("ready") for m in subscriber.received(STATUS_TOPIC)),
                30,
                "a ready status",
            )
            for seq in range(8):
                camera.send("cam0", seq, line.frame(seq).image)
            frames = "defectd/line1/cam0/frame"
            subscriber.until(lambda: len(subscriber.received(frames)) >= 8, 60, "8 frames")
            deadline = time.monotonic() + 10
            while metric(daemon.metrics(), "defectd_output_delivered_total", output="mqtt") < 8:
                assert time.monotonic() < deadline, "mqtt deliveries not in /metrics"
                time.sleep(0.2)
            assert metric(daemon.metrics(), "defectd_output_connected", output="mqtt") == 1
            assert daemon.stop() == 0
        subscriber.until(lambda: states(subscriber)[-1:] == ["offline"], 5, "offline at stop")
    summaries = [m.json() for m in subscriber.received(frames)]
    assert sorted(s["seq"] for s in summaries) == list(range(8))
    found = {(s["seq"], name) for s in summaries for name in s["classes"]}
    defects = [m for m in subscriber.received("defectd/line1/cam0/defect/")]
    assert found, "the test needs defective frames"
    assert {(m.json()["seq"], m.topic.rsplit("/", 1)[1]) for m in defects} == found
    online = [m.json() for m in subscriber.received(STATUS_TOPIC)][:-1]
    assert online and all(s["state"] == "online" for s in online)
    assert online[-1]["engine"]["backend"] == "onnxruntime"
