"""The GenICam gateway against Aravis' fake GigE Vision camera, started by these tests."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import zmq

from defectd.daemon.protocol import read_message
from defectd.engines.errors import MissingDependency

FAKE = "arv-fake-gv-camera-0.8"
DEVICE = "Aravis-Fake-GV01"


def _aravis() -> object:
    from defectd.daemon.clients.camera.aravis import import_aravis

    try:
        return import_aravis()
    except MissingDependency as exc:
        pytest.skip(f"Aravis is not installed here: {exc}")


def _start_fake(aravis: object) -> subprocess.Popen[bytes]:
    from defectd.daemon.clients.camera.aravis import list_devices

    if shutil.which(FAKE) is None:
        pytest.skip(f"{FAKE} is not installed (apt install aravis-tools)")
    process = subprocess.Popen([FAKE, "-i", "127.0.0.1"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if any(d["id"] == DEVICE for d in list_devices(aravis)):
            return process
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"{FAKE} did not show up as {DEVICE} within 10 s")


@pytest.fixture
def fake() -> Iterator[tuple[object, list[subprocess.Popen[bytes]]]]:
    aravis = _aravis()
    processes = [_start_fake(aravis)]
    yield aravis, processes
    for process in processes:
        process.kill()
        process.wait()


def _pull() -> tuple[zmq.Context[zmq.Socket[bytes]], zmq.Socket[bytes], str]:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    socket = context.socket(zmq.PULL)
    port = socket.bind_to_random_port("tcp://127.0.0.1")
    return context, socket, f"tcp://127.0.0.1:{port}"


def _receive(socket: zmq.Socket[bytes], count: int, timeout_s: float = 15.0) -> list[object]:
    got = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        if socket.poll(200):
            got.append(read_message(socket.recv_multipart(), False, ("top-0",), 1 << 24))
    assert len(got) == count, f"{len(got)} of {count} frames arrived"
    return got


def test_frames_of_the_fake_camera_arrive_with_its_size_seq_and_time(fake) -> None:  # type: ignore[no-untyped-def]
    from defectd.daemon.clients.camera.gateway import CameraConfig, Gateway

    aravis, _ = fake
    context, socket, endpoint = _pull()
    config = CameraConfig(id="top-0", endpoint=endpoint, mode="push", device=DEVICE,
                          width=512, height=256, frame_rate=20.0, coil_id="C-1")  # fmt: skip
    gateway = Gateway(config, aravis, context)
    worker = threading.Thread(target=gateway.run, args=(threading.Event(), 5))
    worker.start()
    messages = _receive(socket, 5)
    worker.join(10)
    socket.close(0)
    context.term()
    now = time.time_ns()
    seqs = []
    for message in messages:
        header = message.header  # type: ignore[attr-defined]
        assert (header.width, header.height, header.encoding) == (512, 256, "mono8")
        assert header.coil_id == "C-1" and abs(header.capture_ns - now) < 30 * 10**9
        seqs.append(header.seq)
    assert seqs == list(range(seqs[0], seqs[0] + 5))  # the stream's frame ids, no gap
    # The fake camera's pattern: a ramp along each row, shifted by one grey level per frame.
    first, second = (np.frombuffer(m.payload, np.uint8).reshape(256, 512) for m in messages[:2])  # type: ignore[attr-defined]
    assert (np.diff(first[0, :64].astype(int)) == 1).all()
    assert int(second[0, 0]) == (int(first[0, 0]) + 1) % 256
    assert gateway.counts.frames == 5 and gateway.counts.reconnects == 0
    from prometheus_client import generate_latest

    from defectd.daemon.commands.camera import counters

    exposition = generate_latest(counters(gateway)).decode()
    assert 'defectd_camera_frames_total{camera="top-0"} 5.0' in exposition
    assert 'defectd_camera_reconnects_total{camera="top-0"} 0.0' in exposition


def test_a_side_channel_sets_coil_and_position_of_the_frames(fake) -> None:  # type: ignore[no-untyped-def]
    import json

    from defectd.daemon.clients.camera.gateway import CameraConfig, Gateway

    aravis, _ = fake
    context, socket, endpoint = _pull()
    plc = context.socket(zmq.PUB)
    port = plc.bind_to_random_port("tcp://127.0.0.1")
    config = CameraConfig(id="top-0", endpoint=endpoint, mode="push", device=DEVICE,
                          width=256, height=128, frame_rate=20.0, coil_id="C-0",
                          side_channel=f"tcp://127.0.0.1:{port}")  # fmt: skip
    gateway = Gateway(config, aravis, context)
    stop = threading.Event()
    worker = threading.Thread(target=gateway.run, args=(stop,))
    worker.start()
    reading = {"coil_id": "C24-08151", "position_m": 500.0, "speed_m_per_s": 2.0,
               "at_ns": time.time_ns()}  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        header = None
        while time.monotonic() < deadline:
            plc.send(json.dumps(reading).encode())
            (message,) = _receive(socket, 1)
            header = message.header  # type: ignore[attr-defined]
            if header.coil_id == "C24-08151":
                break
        assert header is not None and header.coil_id == "C24-08151"
        # Moved on from the reading by 2 m/s to the frame's capture time.
        expected = 500.0 + 2.0 * (header.capture_ns - reading["at_ns"]) / 1e9
        assert header.position_m == pytest.approx(expected, abs=1e-6)
        assert 500.0 <= header.position_m < 560.0
    finally:
        stop.set()
        worker.join(15)
        plc.close(0)
        socket.close(0)
        context.term()
    assert gateway.counts.side_updates >= 1 and gateway.counts.side_rejected == 0


def test_a_camera_killed_and_restarted_is_reconnected(fake) -> None:  # type: ignore[no-untyped-def]
    from defectd.daemon.clients.camera.gateway import CameraConfig, Gateway

    aravis, processes = fake
    context, socket, endpoint = _pull()
    config = CameraConfig(id="top-0", endpoint=endpoint, mode="push", device=DEVICE,
                          width=256, height=128, frame_rate=20.0, lost_after_s=1.0,
                          reconnect_max_s=1.0)  # fmt: skip
    gateway = Gateway(config, aravis, context)
    stop = threading.Event()
    worker = threading.Thread(target=gateway.run, args=(stop,))
    worker.start()
    try:
        _receive(socket, 3)
        processes[0].kill()
        processes[0].wait()
        time.sleep(1.5)  # the gateway notices the silence
        processes.append(_start_fake(aravis))
        _receive(socket, 3, timeout_s=30)
    finally:
        stop.set()
        worker.join(15)
        socket.close(0)
        context.term()
    assert gateway.counts.reconnects >= 1


def test_a_missing_device_or_a_format_it_lacks_names_the_fix(fake) -> None:  # type: ignore[no-untyped-def]
    from defectd.daemon.clients.camera.gateway import CameraConfig, CameraError, open_device

    aravis, _ = fake
    with pytest.raises(CameraError, match=r"not found .*defectd camera --list"):
        open_device(aravis, CameraConfig(id="c", endpoint="tcp://127.0.0.1:1", device="nope"))
    with pytest.raises(CameraError, match=r"has no pixel format Mono12; it offers .*Mono8"):
        open_device(
            aravis,
            CameraConfig(
                id="c", endpoint="tcp://127.0.0.1:1", device=DEVICE, pixel_format="Mono12"
            ),
        )


def test_the_command_lists_cameras_and_refuses_a_bad_config(  # type: ignore[no-untyped-def]
    fake, tmp_path, capsys
) -> None:
    from defectd.daemon.cli import main

    assert main(["camera", "--list"]) == 0
    assert f"{DEVICE}: " in capsys.readouterr().out
    bad = tmp_path / "camera.yaml"
    bad.write_text("id: top-0\nendpoint: tcp://127.0.0.1:1\npixelformat: Mono8\n")
    assert main(["camera", "--config", str(bad)]) == 2
    assert "unknown key(s) pixelformat" in capsys.readouterr().err


@pytest.mark.slow
def test_the_fake_cameras_frames_reach_a_running_daemon(fake, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from defectd.daemon.clients.camera.gateway import CameraConfig, Gateway
    from defectd.daemon.tools.loopback import DaemonProcess, Listener, LoopbackPorts, line_config

    aravis, _ = fake
    ports = LoopbackPorts()
    config = line_config(
        ports,
        ("top-0",),
        push=True,
        engine={"backend": "onnxruntime", "max_batch": 2, "threads": 1},
        width=512,
        height=256,
        sections={"batching": {"max_wait_ms": 10.0, "policy": "block"},
                  "publish": {"status_interval_s": 0.2}},
    )  # fmt: skip
    camera = CameraConfig(id="top-0", endpoint=ports.camera_endpoint, mode="push",
                          device=DEVICE, width=512, height=256, frame_rate=20.0)  # fmt: skip
    with (
        DaemonProcess(config, tmp_path, ports) as daemon,
        Listener(ports.publish_endpoint, strict=True) as subscriber,
    ):
        daemon.wait_ready()
        assert subscriber.wait_subscribed()
        gateway = Gateway(camera, aravis)
        sender = threading.Thread(target=gateway.run, args=(threading.Event(), 6))
        sender.start()
        subscriber.until(lambda: len(subscriber.of("frame")) >= 6, 30, "6 frame summaries")
        sender.join(10)
        assert daemon.stop() == 0
    seqs = [p["seq"] for t, p in subscriber.messages() if t.startswith("frame.")]
    assert len(seqs) == 6 and seqs == list(range(seqs[0], seqs[0] + 6))
