"""`defectd tail`'s pure part: one line per event, and gaps found from topic_seq — also over
a real ZeroMQ PUB/SUB pair on loopback."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import replace
from typing import Any

import pytest
import zmq

from defectd.daemon.clients.subscriber import Gap, GapDetector, clock, format_event, format_gap
from defectd.daemon.events import (
    FrameCounts,
    TopicSequencer,
    decode_message,
    defect_events,
    encode,
    frame_summary,
)
from defectd.daemon.topics import prefix
from tests.daemon.events.helpers import (
    CLASSES,
    MODEL,
    RECEIVE_NS,
    RUN,
    Frame,
    clean_frame,
    defective_frame,
    status,
)

UTC = dt.UTC
NOON_NS = 1_714_564_801_234_567_890  # 2024-05-01 12:00:01.234567890 UTC


def decoded(event: Any) -> tuple[str, dict[str, Any]]:
    parts = encode(event, TopicSequencer(RUN))
    return parts[0].decode(), decode_message(parts)


def message(seq: int, run: str = RUN) -> dict[str, Any]:
    return {"schema": "defectd.defect/1", "topic_seq": seq, "run_id": run}


# -- one line per event ---------------------------------------------------------------------


def test_clock_cuts_to_milliseconds_without_rounding() -> None:
    assert clock(NOON_NS, UTC) == "12:00:01.234"
    assert clock(0, UTC) == "00:00:00.000"
    assert len(clock(NOON_NS)) == len("12:00:01.234")  # local zone


def test_defect_line() -> None:
    frame = Frame(capture_ns=NOON_NS)
    pits, scratches = defect_events(frame, defective_frame(), CLASSES, line="line1", model=MODEL)
    assert format_event(*decoded(pits), tz=UTC) == (
        "12:00:01.234 defect line1/cam0 #1234 class 1 pits: 2 regions, 609 px, max p 0.90"
    )
    assert format_event(*decoded(scratches), tz=UTC) == (
        "12:00:01.234 defect line1/cam0 #1234 class 3 scratches: 1 region, 100 px, max p 0.60"
    )
    with_coil = replace(pits, coil_id="C-0042", position_m=1234.56, regions=())
    assert format_event(*decoded(with_coil), tz=UTC).endswith(
        "class 1 pits: 2 regions, 609 px, coil C-0042 @ 1,234.6 m"
    )


def test_frame_lines() -> None:
    frame = Frame(capture_ns=NOON_NS)
    receive_ns, publish_ns = NOON_NS + 5_000_000, NOON_NS + 42_500_000
    found = frame_summary(
        frame,
        defective_frame(),
        CLASSES,
        line="line1",
        receive_ns=receive_ns,
        publish_ns=publish_ns,
        batch_size=4,
    )
    assert format_event(*decoded(found), tz=UTC) == (
        "12:00:01.234 frame  line1/cam0 #1234 3 defects in pits, scratches, "
        "latency 42.5 ms (in daemon 37.5 ms), batch 4"
    )
    clean = frame_summary(
        replace(frame, position_m=12.0),
        clean_frame(),
        CLASSES,
        line="line1",
        receive_ns=receive_ns,
        publish_ns=publish_ns,
        batch_size=1,
    )
    assert format_event(*decoded(clean), tz=UTC) == (
        "12:00:01.234 frame  line1/cam0 #1234 clean, latency 42.5 ms (in daemon 37.5 ms), "
        "batch 1, at 12.0 m"
    )


def test_status_lines() -> None:
    ready = replace(status(), publish_ns=NOON_NS)
    assert format_event(*decoded(ready), tz=UTC) == (
        "12:00:01.234 status ready, up 1h02m03s, 25.0 fps, frames 1,000 received 990 processed "
        "10 dropped (bad_header 3, queue_full 7) 2 lost, queue 3, slots 5/32, "
        "onnxruntime fp32 on cpu, defectd-default 1.0.0"
    )
    loading = replace(status(ready=False), publish_ns=NOON_NS, uptime_s=7.9, fps=0.0)
    loading = replace(loading, frames=FrameCounts())
    assert format_event(*decoded(loading), tz=UTC) == (
        "12:00:01.234 status starting, up 7s, 0.0 fps, frames 0 received 0 processed 0 dropped "
        "0 lost, queue 3, slots 5/32, engine loading"
    )


def test_wire_text_cannot_drive_the_terminal() -> None:
    frame = Frame(capture_ns=NOON_NS, coil_id="C1\x1b[2J\nfake line\u009b")
    (pits, _) = defect_events(frame, defective_frame(), CLASSES, line="line1", model=MODEL)
    line = format_event(*decoded(pits), tz=UTC)
    assert "\x1b" not in line and "\n" not in line and "\u009b" not in line
    assert line.endswith(r"coil C1\x1b[2J\nfake line\x9b")


def test_a_message_it_cannot_lay_out_is_shown_raw() -> None:
    assert format_event("defect.l.c.x", {"schema": "defectd.defect/1", "topic_seq": 3}) == (
        'defect.l.c.x {"schema":"defectd.defect/1","topic_seq":3}'
    )
    assert format_event("alarm\x1b", {"a": "\x1b"}) == r'alarm\x1b {"a":"\u001b"}'


# -- gaps -----------------------------------------------------------------------------------


def test_gap_detector_per_topic() -> None:
    detector = GapDetector()
    a, b = "defect.line1.cam0.pits", "defect.line1.cam0.scratches"
    assert detector.observe(a, message(7)) is None  # joined mid-stream: baseline
    assert detector.observe(a, message(8)) is None
    assert detector.observe(b, message(0)) is None
    assert detector.observe(a, message(11)) == Gap(a, 9, 11, 2, restarted=False)
    assert detector.observe(b, message(1)) is None
    assert detector.observe(b, message(3)) == Gap(b, 2, 3, 1, restarted=False)
    assert detector.missed == {a: 2, b: 1} and detector.total_missed == 3


def test_a_new_run_id_is_a_restart_not_a_gap_count_from_the_old_run() -> None:
    detector = GapDetector()
    topic, new_run = "status", "fedcba9876543210"
    detector.observe(topic, message(500))
    assert detector.observe(topic, message(0, new_run)) == Gap(topic, 0, 0, 0, True)
    assert detector.observe(topic, message(1, new_run)) is None
    # Restarted again and its first two heartbeats were missed.
    assert detector.observe(topic, message(2, RUN)) == Gap(topic, 0, 2, 2, True)
    assert detector.restarts == 2 and detector.total_missed == 2


def test_format_gap() -> None:
    topic = "defect.line1.cam0.pits"
    assert format_gap(Gap(topic, 9, 10, 1, False)) == f"{topic}: 1 message missed (topic_seq 9)"
    assert format_gap(Gap(topic, 9, 12, 3, False)) == (
        f"{topic}: 3 messages missed (topic_seq 9–11)"
    )
    assert format_gap(Gap("status", 0, 0, 0, True)) == (
        "status: publisher restarted, 0 messages of its new run missed"
    )


# -- a real PUB/SUB pair --------------------------------------------------------------------

PROBE = b"defect.line1.cam0.~probe"  # "~" never appears in a sanitised topic
END = b"defect.line1.cam0.~end"


def wait_until_subscribed(pub: zmq.Socket[bytes], sub: zmq.Socket[bytes]) -> None:
    """Publish probes until one arrives: PUB drops everything sent before the subscription
    has reached it (the slow-joiner problem), so only then can the test rely on delivery."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pub.send_multipart([PROBE, b"{}"])
        if sub.poll(50):
            assert sub.recv_multipart()[0] == PROBE
            return
    pytest.fail("the SUB socket's subscription never reached the PUB socket")


def test_prefix_subscriber_gets_one_camera_and_finds_the_dropped_message() -> None:
    context = zmq.Context()
    pub = context.socket(zmq.PUB)
    sub = context.socket(zmq.SUB)
    try:
        pub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.LINGER, 0)
        port = pub.bind_to_random_port("tcp://127.0.0.1")
        sub.setsockopt(zmq.SUBSCRIBE, prefix("defect", "line1", "cam0").encode())
        sub.connect(f"tcp://127.0.0.1:{port}")
        wait_until_subscribed(pub, sub)

        sequencer = TopicSequencer(RUN)
        wanted: list[tuple[str, int, int]] = []  # (topic, camera seq, topic_seq) of cam0 defects
        for seq in range(5):
            for camera in ("cam0", "cam01", "cam1"):  # cam01 shares cam0's text prefix
                frame = Frame(camera_id=camera, seq=seq)
                for event in defect_events(
                    frame, defective_frame(), CLASSES, line="line1", model=MODEL
                ):
                    parts = encode(event, sequencer)
                    if camera == "cam0" and seq == 2 and event.class_name == "pits":
                        continue  # numbered, never sent: a message the network lost
                    pub.send_multipart(parts)
                    if camera == "cam0":
                        wanted.append((event.topic, seq, decode_message(parts)["topic_seq"]))
                summary = frame_summary(
                    frame,
                    defective_frame(),
                    CLASSES,
                    line="line1",
                    receive_ns=RECEIVE_NS,
                    publish_ns=0,
                    batch_size=1,
                )
                pub.send_multipart(encode(summary, sequencer))
            pub.send_multipart(encode(status(), sequencer))
        # PUB→SUB keeps order: once the end marker is in, everything before it is too.
        pub.send_multipart([END, b"{}"])

        received: list[tuple[str, int, int]] = []
        gaps = []
        detector = GapDetector()
        while True:
            assert sub.poll(5000), "timed out waiting for the published events"
            parts = sub.recv_multipart()
            if parts[0] == END:
                break
            if parts[0] == PROBE:
                continue  # probes sent while the subscription was settling
            topic, payload = parts[0].decode(), decode_message(parts)
            received.append((topic, payload["seq"], payload["topic_seq"]))
            gap = detector.observe(topic, payload)
            if gap is not None:
                gaps.append(gap)
    finally:
        sub.close()
        pub.close()
        context.term()

    assert received == wanted
    assert {topic for topic, _, _ in received} == {
        "defect.line1.cam0.pits",
        "defect.line1.cam0.scratches",
    }
    assert gaps == [Gap("defect.line1.cam0.pits", 2, 3, 1, restarted=False)]
    assert detector.total_missed == 1
