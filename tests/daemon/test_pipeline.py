"""The daemon end to end: `defectd run` as a real process tree on loopback sockets."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import jsonschema  # defectd[dev]
import numpy as np
import pytest
import zmq

from defectd.daemon.config import check_model, load_config
from defectd.daemon.protocol import FrameHeader, encode_frame
from defectd.daemon.stages.inference import candidate_classes
from defectd.daemon.tools.loopback import (
    Camera,
    DaemonProcess,
    Listener,
    LoopbackPorts,
    free_port,
    metric,
    write_config,
)
from defectd.engines.model_card import default_model_dir
from defectd.engines.postprocess import postprocess
from defectd.engines.selection import EngineConfig, open_engine
from defectd.engines.synth import SyntheticLine
from tests.daemon.pipeline_helpers import HEIGHT, WIDTH, small_line

pytestmark = pytest.mark.slow
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas"
SCHEMAS = {
    kind: jsonschema.Draft202012Validator(json.loads((SCHEMA_DIR / name).read_text()))
    for kind, name in (
        ("defect", "defect-event.schema.json"),
        ("frame", "frame-summary.schema.json"),
        ("status", "status-event.schema.json"),
    )
}
ONNX = {"backend": "onnxruntime", "max_batch": 2, "threads": 1}


def balanced(status: dict[str, Any]) -> bool:
    frames = status["frames"]
    return bool(frames["received"] == frames["processed"] + sum(frames["dropped"].values()))


def test_null_engine_every_frame_published_in_order(
    tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    ports = LoopbackPorts()
    config = small_line(ports)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(5)
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "1000000"}
    with (
        notify,
        DaemonProcess(config, tmp_path, ports, env=env) as daemon,
        Listener(ports.publish_endpoint, strict=True) as subscriber,
    ):
        daemon.wait_ready()
        _notifications(notify, "READY=1")  # systemd hears of readiness,
        _notifications(notify, "WATCHDOG=1")  # and of progress while every stage turns
        assert daemon.http("/healthz")[0] == 200
        assert set(daemon.children()) == {"recv0", "infer", "post0", "pub"}
        assert subscriber.wait_subscribed()
        camera = Camera(ports.camera_endpoint, context=context)
        for seq in range(30):
            for cam in ("cam0", "cam1"):
                camera.send(cam, seq, coil_id="C-17", position_m=1.5 * seq)
        subscriber.until(lambda: len(subscriber.of("frame")) >= 60, 15, "60 frame summaries")
        subscriber.until(
            lambda: (subscriber.last_status() or {})["frames"]["processed"] == 60,
            5,
            "status with 60 processed",
        )
        status = subscriber.last_status()
        assert status is not None and status["ready"] and balanced(status)
        assert status["frames"]["dropped"] == {} and status["frames"]["lost"] == 0
        seen = subscriber.summaries()
        for cam in ("cam0", "cam1"):  # every frame, each camera in order
            assert [seq for c, seq in seen if c == cam] == list(range(30))
        first = subscriber.of("frame")[0]
        assert first["line"] == "line1" and first["coil_id"] == "C-17"
        assert first["classes"] == [] and first["receive_ns"] <= first["publish_ns"]
        assert subscriber.of("defect") == []
        exposition = daemon.metrics()
        assert metric(exposition, "defectd_frames_received_total", camera="cam0") == 30
        assert metric(exposition, "defectd_frames_processed_total", camera="cam1") == 30
        assert daemon.stop() == 0
        assert "STOPPING=1" in _notifications(notify, "STOPPING=1")
    assert "stopped: received 60, processed 60, dropped none" in daemon.log_text()


def _notifications(notify: socket.socket, wanted: str) -> str:
    """sd_notify datagrams received until one holds `wanted` (all of them, joined)."""
    said = []
    while True:
        message = notify.recv(4096).decode()
        said.append(message)
        if wanted in message.splitlines():
            return "\n".join(said)


def test_malformed_frames_rejected_by_reason(
    tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    ports = LoopbackPorts()
    config = small_line(ports, ingest={"max_frame_bytes": HEIGHT * WIDTH})
    good = b'{"camera_id":"cam0","seq":%d,"capture_ns":1,"encoding":"%s","width":%d,"height":256}'
    frame = bytes(HEIGHT * WIDTH)
    bad = {
        "malformed_message": [b"cam0", good % (0, b"mono8", WIDTH), frame],
        "malformed_header": [b"{not json", frame],
        "unknown_camera": [good.replace(b"cam0", b"cam9") % (1, b"mono8", WIDTH), frame],
        "unknown_encoding": [good % (2, b"rgb565", WIDTH), frame],
        "size_mismatch": [good % (3, b"mono8", WIDTH), frame[:-1]],
        "too_large": [good % (4, b"bgr8", WIDTH), bytes(3 * HEIGHT * WIDTH)],
        "wrong_frame_size": [good % (5, b"mono8", 800), bytes(HEIGHT * 800)],
        "undecodable": [good % (6, b"png", WIDTH), b"\x89PNG\r\n\x1a\n" + bytes(40)],
    }
    with (
        DaemonProcess(config, tmp_path, ports) as daemon,
        Listener(ports.publish_endpoint, strict=True) as subscriber,
    ):
        daemon.wait_ready()
        assert subscriber.wait_subscribed()
        camera = Camera(ports.camera_endpoint, context=context)
        for parts in bad.values():
            camera.send_raw(parts)
        camera.send("cam0", 7)  # still alive: the next good frame goes through
        subscriber.until(
            lambda: (subscriber.last_status() or {})["frames"]["processed"] == 1,
            10,
            "the good frame processed",
        )
        status = subscriber.last_status()
        assert status is not None
        assert status["frames"]["dropped"] == dict.fromkeys(sorted(bad), 1)
        assert status["frames"]["received"] == len(bad) + 1 and balanced(status)
        assert subscriber.summaries() == [("cam0", 7)]
        exposition = daemon.metrics()
        assert (
            metric(exposition, "defectd_frames_dropped_total", camera="cam0", reason="too_large")
            == 1
        )
        assert (
            metric(
                exposition,
                "defectd_frames_dropped_total",
                camera="(unknown)",
                reason="malformed_header",
            )
            == 1
        )
        assert daemon.http("/readyz")[0] == 200
        assert daemon.stop() == 0
    assert "frame rejected: camera cam0: size_mismatch" in daemon.log_text()


def _expected_classes(frames: list[np.ndarray], config_path: Path) -> list[tuple[str, ...]]:
    """What the bundled model finds in `frames`, computed here without the daemon."""
    config = load_config(config_path)
    thresholds = check_model(config).thresholds
    engine_config = EngineConfig(backend="onnxruntime", max_batch=1, threads=1, warmup=False)
    expected = []
    with open_engine(default_model_dir(), engine_config) as engine:
        for image in frames:
            out = engine.infer(image[None])
            defects = postprocess(out.probs[0], out.presence[0], thresholds, out.peak[0])
            expected.append(tuple(engine.info.classes[c - 1] for c in defects.classes))
            # the daemon's fast path must never skip a frame post-processing would keep
            kept = {c - 1 for c in defects.classes}
            presence = np.asarray(out.presence[0], np.float64)
            assert kept <= set(
                candidate_classes(presence, np.asarray(out.peak[0], np.float64), thresholds)
            )
    return expected


def test_onnx_engine_publishes_defects_of_the_right_classes(
    tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    ports = LoopbackPorts()
    config = small_line(ports, engine=ONNX, postprocess={"include_rle": True})
    line = SyntheticLine(7)
    synth = [line.frame(index) for index in range(8)]
    expected = _expected_classes(
        [frame.image for frame in synth], write_config(tmp_path / "defectd.yaml", config)
    )
    assert sum(1 for classes in expected if classes) >= 4  # the test needs defective frames
    with (
        DaemonProcess(config, tmp_path, ports) as daemon,
        Listener(ports.publish_endpoint, strict=True) as subscriber,
    ):
        daemon.wait_ready()
        assert subscriber.wait_subscribed()
        camera = Camera(ports.camera_endpoint, context=context)
        for index, frame in enumerate(synth):
            camera.send("cam1", 100 + index, frame.image)
        subscriber.until(lambda: len(subscriber.of("frame")) >= 8, 20, "8 frame summaries")
        assert daemon.stop() == 0
    by_seq: dict[int, list[str]] = {}
    order: list[tuple[str, int]] = []  # a frame's defect events come before its summary
    for topic, payload in subscriber.messages():
        kind = topic.split(".")[0]
        if kind == "defect":
            assert topic == f"defect.line1.cam1.{payload['class_name']}"
            assert payload["regions"] and payload["rle"] and payload["area_px"] > 0
            by_seq.setdefault(payload["seq"], []).append(payload["class_name"])
            order.append(("defect", payload["seq"]))
        elif kind == "frame":
            order.append(("frame", payload["seq"]))
            assert tuple(payload["classes"]) == expected[payload["seq"] - 100]
    for seq, names in by_seq.items():
        assert tuple(names) == expected[seq - 100]
        assert order.index(("frame", seq)) > max(
            i for i, e in enumerate(order) if e == ("defect", seq)
        )
    for topic, payload in subscriber.messages():  # real output against the published schemas
        SCHEMAS[topic.split(".")[0]].validate(payload)
    truth = [tuple(line.frame(i).classes) for i in range(8)]
    found = [tuple(sorted(by_seq.get(100 + i, []))) for i in range(8)]
    assert sum(bool(t) and bool(f) for t, f in zip(truth, found, strict=True)) >= 4, (truth, found)


def test_sigterm_drains_frames_in_flight(
    tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    ports = LoopbackPorts()
    count = 40
    config = small_line(ports, engine=ONNX, slots={"count": 48})
    image = SyntheticLine(3).frame(0).image
    with (
        DaemonProcess(config, tmp_path, ports) as daemon,
        Listener(ports.publish_endpoint, strict=True) as subscriber,
    ):
        daemon.wait_ready()
        assert subscriber.wait_subscribed()
        camera = Camera(ports.camera_endpoint, context=context)
        for seq in range(count):
            camera.send("cam0", seq, image)
        subscriber.until(
            lambda: (subscriber.last_status() or {})["frames"]["received"] == count,
            10,
            "every frame received",
        )
        status = subscriber.last_status()
        assert status is not None and status["frames"]["processed"] < count  # still in flight
        daemon.process.send_signal(signal.SIGTERM)
        daemon.wait(20)
        time.sleep(0.2)  # the last messages reach the subscriber
        assert daemon.process.wait(1) == 0
    assert subscriber.summaries() == [("cam0", seq) for seq in range(count)]
    assert f"stopped: received {count}, processed {count}, dropped none" in daemon.log_text()
    assert not [
        name for name in os.listdir("/dev/shm") if name.startswith(f"defectd-{daemon.process.pid}-")
    ]


def test_killed_inference_restarts_and_its_frames_count_as_crash_drops(
    tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    ports = LoopbackPorts()
    count = 30
    config = small_line(ports, engine=ONNX, slots={"count": 32})
    image = SyntheticLine(3).frame(1).image
    with (
        DaemonProcess(config, tmp_path, ports) as daemon,
        Listener(ports.publish_endpoint, strict=True) as subscriber,
    ):
        daemon.wait_ready()
        assert subscriber.wait_subscribed()
        camera = Camera(ports.camera_endpoint, context=context)
        for seq in range(count):
            camera.send("cam0", seq, image)
        subscriber.until(lambda: len(subscriber.of("frame")) >= 2, 10, "the first frames")
        receiver = daemon.children()["recv0"]
        os.kill(daemon.children()["infer"], signal.SIGKILL)

        def settled() -> bool:
            status = subscriber.last_status() or {}
            frames = status.get("frames", {})
            return (
                bool(status.get("ready")) and frames.get("received") == count and balanced(status)
            )

        subscriber.until(settled, 20, "restart and every frame accounted for")
        status = subscriber.last_status()
        assert status is not None
        crashed = status["frames"]["dropped"].get("worker_crash", 0)
        assert set(status["frames"]["dropped"]) <= {"worker_crash"}
        assert crashed >= 1
        assert len(subscriber.summaries()) == count - crashed
        assert daemon.children()["recv0"] == receiver  # the receiver kept running
        exposition = daemon.metrics()
        assert metric(exposition, "defectd_worker_restarts_total", kind="inference") == 1
        assert (
            metric(exposition, "defectd_frames_dropped_total", camera="cam0", reason="worker_crash")
            == crashed
        )
        assert daemon.stop() == 0
    assert "inference (pid" in daemon.log_text()


def test_no_subscriber_does_not_stall_the_pipeline(
    tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    ports = LoopbackPorts()
    config = small_line(ports, publish={"sndhwm": 1})
    with DaemonProcess(config, tmp_path, ports) as daemon:
        daemon.wait_ready()
        camera = Camera(ports.camera_endpoint, context=context)
        for seq in range(100):
            camera.send("cam0", seq)
        deadline = time.monotonic() + 10
        processed = 0.0
        while processed < 100 and time.monotonic() < deadline:
            time.sleep(0.2)
            exposition = daemon.metrics()
            processed = metric(exposition, "defectd_frames_processed_total", camera="cam0")
        assert processed == 100
        assert daemon.stop() == 0


def test_a_subscriber_that_never_reads_does_not_stall_the_pipeline(
    tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    """A connected SUB that reads nothing: its queue fills, ZeroMQ drops for it alone."""
    ports = LoopbackPorts()
    config = small_line(ports, publish={"sndhwm": 4})
    with DaemonProcess(config, tmp_path, ports) as daemon:
        daemon.wait_ready()
        stuck = context.socket(zmq.SUB)
        stuck.setsockopt(zmq.RCVHWM, 1)
        stuck.setsockopt(zmq.RCVBUF, 4096)
        stuck.setsockopt(zmq.SUBSCRIBE, b"")
        stuck.connect(ports.publish_endpoint)
        time.sleep(0.5)  # the subscription reaches the publisher
        camera = Camera(ports.camera_endpoint, context=context)
        for seq in range(100):
            camera.send("cam0", seq)
        deadline = time.monotonic() + 10
        processed = 0.0
        while processed < 100 and time.monotonic() < deadline:
            time.sleep(0.2)
            exposition = daemon.metrics()
            processed = metric(exposition, "defectd_frames_processed_total", camera="cam0")
        assert processed == 100  # every frame went through while the subscriber sat still
        assert stuck.poll(0)  # it is connected: messages did reach it, it just never read
        stuck.close(linger=0)
        assert daemon.stop() == 0


def test_overload_with_drop_oldest_accounts_for_every_frame(
    tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    ports = LoopbackPorts()
    count = 40
    config = small_line(
        ports,
        engine=ONNX,
        slots={"count": 4},
        batching={"policy": "drop_oldest"},
    )
    image = SyntheticLine(3).frame(0).image
    with (
        DaemonProcess(config, tmp_path, ports) as daemon,
        Listener(ports.publish_endpoint, strict=True) as subscriber,
    ):
        daemon.wait_ready()
        assert subscriber.wait_subscribed()
        camera = Camera(ports.camera_endpoint, context=context)
        for seq in range(count):
            camera.send("cam1", seq, image)

        def settled() -> bool:
            frames = (subscriber.last_status() or {}).get("frames", {})
            return frames.get("received") == count and balanced(subscriber.last_status() or {})

        subscriber.until(settled, 20, "every frame processed or dropped")
        status = subscriber.last_status()
        assert status is not None
        dropped = status["frames"]["dropped"]
        assert set(dropped) == {"queue_full"} and dropped["queue_full"] > 0
        seen = [seq for _, seq in subscriber.summaries()]
        assert len(seen) == count - dropped["queue_full"] == status["frames"]["processed"]
        assert seen == sorted(seen)  # the newest frames win, in order
        assert seen[-1] == count - 1
        assert daemon.stop() == 0
    assert f"stopped: received {count}, processed {len(seen)}" in daemon.log_text()


def test_sub_cameras_and_two_receivers(
    tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    ports = LoopbackPorts()
    pub_port = free_port()
    config = small_line(ports, ingest={"receivers": 2})
    config["cameras"][0] = {  # a camera that publishes; the daemon connects to it
        "id": "cam0",
        "endpoint": f"tcp://127.0.0.1:{pub_port}",
        "mode": "connect",
        "width": WIDTH,
        "height": HEIGHT,
    }
    source = context.socket(zmq.PUB)
    source.setsockopt(zmq.LINGER, 0)
    source.bind(f"tcp://127.0.0.1:{pub_port}")
    blank = bytes(HEIGHT * WIDTH)
    with (
        DaemonProcess(config, tmp_path, ports) as daemon,
        Listener(ports.publish_endpoint, strict=True) as subscriber,
    ):
        daemon.wait_ready()
        assert {"recv0", "recv1"} <= set(daemon.children())
        assert subscriber.wait_subscribed()
        pusher = Camera(ports.camera_endpoint, context=context)
        seq = 0

        def cam0_arrived() -> bool:
            nonlocal seq  # PUB drops until the daemon's subscription is in: keep sending
            header = FrameHeader("cam0", seq, time.time_ns(), "mono8", WIDTH, HEIGHT)
            source.send_multipart(encode_frame(header, blank, with_topic=True))
            seq += 1
            return any(cam == "cam0" for cam, _ in subscriber.summaries())

        subscriber.until(cam0_arrived, 10, "a frame from the PUB camera")
        for index in range(5):
            pusher.send("cam1", index)
        subscriber.until(
            lambda: sum(cam == "cam1" for cam, _ in subscriber.summaries()) == 5, 10, "cam1"
        )
        assert daemon.stop() == 0


@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here"
)
def test_an_engine_that_cannot_open_makes_the_daemon_give_up(tmp_path: Path) -> None:
    ports = LoopbackPorts()
    config = small_line(ports, engine={"backend": "tensorrt"})
    with DaemonProcess(config, tmp_path, ports) as daemon:
        assert daemon.process.wait(30) == 1
    log = daemon.log_text()
    assert "engine.backend tensorrt: TensorRT/pycuda or an NVIDIA GPU is missing" in log
    assert "giving up: the inference process died 3 times" in log


@pytest.mark.parametrize("stage", ["post0", "pub", "recv0"])
def test_an_idle_stage_killed_is_restarted_and_the_pipeline_goes_on(
    stage: str, tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    ports = LoopbackPorts()
    config = small_line(ports)
    kind = {"post0": "postprocess", "pub": "publisher", "recv0": "receiver"}[stage]
    with (
        DaemonProcess(config, tmp_path, ports) as daemon,
        Listener(ports.publish_endpoint, strict=True) as subscriber,
    ):
        daemon.wait_ready()
        assert subscriber.wait_subscribed()
        camera = Camera(ports.camera_endpoint, context=context)
        for seq in range(5):
            camera.send("cam0", seq)
        subscriber.until(
            lambda: (subscriber.last_status() or {})["frames"]["received"] == 5,
            10,
            "the first frames accounted for",
        )
        victim = daemon.children()[stage]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while daemon.children().get(stage) in (None, victim) and time.monotonic() < deadline:
            time.sleep(0.1)
        daemon.wait_ready(15)
        # sockets reconnect to the replacement: keep sending until frames come through again
        seq = 5

        def flowing() -> bool:
            nonlocal seq
            camera.send("cam0", seq)
            seq += 1
            return len(subscriber.summaries()) >= 8

        subscriber.until(flowing, 15, "frames after the restart")
        exposition = daemon.metrics()
        assert metric(exposition, "defectd_worker_restarts_total", kind=kind) == 1
        assert daemon.stop() == 0
    assert f"{kind}" in daemon.log_text() and "died with exit code -9" in daemon.log_text()
