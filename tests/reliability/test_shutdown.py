"""Stopping under full load, and exits that leave nothing behind in /dev/shm.

The drain of frames already in flight (sent, then SIGTERM once received) is
tests/daemon/test_pipeline.py::test_sigterm_drains_frames_in_flight; here the camera is still
pushing as fast as the daemon takes frames when the signal comes.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from defectd.daemon.background import Background
from defectd.daemon.protocol import FrameHeader, encode_frame
from defectd.daemon.tools.loopback import DaemonProcess, Listener, LoopbackPorts
from defectd.engines.synth import SyntheticLine
from tests.daemon.pipeline_helpers import small_line
from tests.daemon.test_pipeline import ONNX
from tests.reliability.conftest import segments_of

pytestmark = pytest.mark.slow
STOPPED = re.compile(
    r"stopped: received (\d+), processed (\d+), dropped (none|\{.*?\}), lost in transport (\d+)"
)


class Pusher:
    """A camera pushing `cam0` frames as fast as the daemon takes them, in a thread."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], endpoint: str) -> None:
        self.sent = 0
        self._stop = threading.Event()
        self._socket = context.socket(zmq.PUSH)
        self._socket.setsockopt(zmq.SNDHWM, 4)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.connect(endpoint)
        self._image = SyntheticLine(3).frame(0).image
        self._sender = Background(self._run, "pusher")

    def __enter__(self) -> Pusher:
        self._sender.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._sender.wait(5)
        self._socket.close(linger=0)
        self._sender.result(timeout_s=0)  # raises what the sending thread raised

    def _run(self) -> None:
        height, width = self._image.shape
        payload = np.ascontiguousarray(self._image).tobytes()
        while not self._stop.is_set():
            header = FrameHeader("cam0", self.sent, time.time_ns(), "mono8", width, height)
            parts = encode_frame(header, payload, with_topic=False)
            while not self._stop.is_set():
                try:  # the daemon's back-pressure (block): wait for room, but stay stoppable
                    self._socket.send_multipart(parts, zmq.NOBLOCK)
                    self.sent += 1
                    break
                except zmq.Again:
                    time.sleep(0.001)


@pytest.mark.parametrize(
    "drain_s",
    [
        pytest.param(10.0),
        pytest.param(0.3),
    ],
    ids=["drains", "deadline-passes"],
)
def test_sigterm_under_full_load_stops_intake_publishes_in_flight_and_exits_in_time(
    drain_s: float, tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    ports = LoopbackPorts()
    config = small_line(
        ports,
        engine=ONNX,
        slots={"count": 16},
        shutdown={"drain_timeout_s": drain_s},
    )
    with (
        DaemonProcess(config, tmp_path, ports) as daemon,
        Listener(ports.publish_endpoint, strict=True) as subscriber,
    ):
        daemon.wait_ready()
        assert subscriber.wait_subscribed()
        with Pusher(context, ports.camera_endpoint) as pusher:

            def loaded() -> bool:  # frames flow and the pool is full: the engine is the limit
                status = subscriber.last_status() or {}
                return (
                    len(subscriber.summaries()) >= 4
                    and status.get("slots", {}).get("used", 0) >= 12
                )

            subscriber.until(loaded, 30, "the pipeline under full load")
            signalled = time.monotonic()
            daemon.process.send_signal(signal.SIGTERM)
            daemon.wait(drain_s + 20)
            took = time.monotonic() - signalled
            time.sleep(0.3)  # the last messages reach the subscriber
            sent = pusher.sent
        assert daemon.process.wait(1) == 0
        pid = daemon.process.pid
    print(f"SIGTERM under load (drain {drain_s:g} s): exit 0 after {took:.2f} s")
    # Within the drain deadline, plus the stages' own stop (the inference process finishes
    # the batch it holds; one ONNX batch of 2 on this CPU is well under a second).
    assert took <= drain_s + 3.0
    log = daemon.log_text()
    found = STOPPED.search(log)
    assert found, log
    received, processed, lost = int(found[1]), int(found[2]), int(found[4])
    dropped = (
        {}
        if found[3] == "none"
        else {k: int(v) for k, v in re.findall(r"'(\w+)': (\d+)", found[3])}
    )
    # Every frame the daemon took in is accounted for, and was published unless dropped;
    # the rest of what the camera sent stayed in ZeroMQ's queues when intake stopped.
    assert received == processed + sum(dropped.values()) and lost == 0
    assert 0 < received <= sent
    published = [seq for camera, seq in subscriber.summaries() if camera == "cam0"]
    assert len(published) == processed and published == sorted(published)
    assert set(published) <= set(range(received))
    if drain_s >= 10:
        # Drained: at most the one frame a receiver waited a slot for is `shutdown`.
        assert set(dropped) <= {"shutdown"} and dropped.get("shutdown", 0) <= 1
    else:
        assert set(dropped) <= {"shutdown"}
    assert "frame accounting is off" not in log
    assert "Traceback" not in log
    assert segments_of(pid) == []


@pytest.mark.parametrize("how", ["sigkill-supervisor", "second-sigterm", "stage-crash"])
def test_no_shared_memory_segment_outlives_the_daemon(
    how: str, tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    """Clean or not: a SIGKILLed supervisor (the resource tracker unlinks), a second signal
    while draining, a clean stop after a stage crashed."""
    ports = LoopbackPorts()
    config = small_line(ports, engine=ONNX, slots={"count": 16})
    with DaemonProcess(config, tmp_path, ports) as daemon:
        daemon.wait_ready()
        pid = daemon.process.pid
        assert len(segments_of(pid)) == 1
        stages = daemon.children()
        with Pusher(context, ports.camera_endpoint):
            time.sleep(1.5)  # frames in every state: READY, in the engine, in post-processing
            if how == "sigkill-supervisor":
                daemon.process.kill()
                assert daemon.process.wait(10) == -signal.SIGKILL
            elif how == "second-sigterm":
                daemon.process.send_signal(signal.SIGTERM)
                time.sleep(0.2)
                daemon.process.send_signal(signal.SIGTERM)
                assert daemon.process.wait(10) == 128 + signal.SIGTERM
            else:
                os.kill(stages["infer"], signal.SIGKILL)
                time.sleep(1.0)
        if how == "stage-crash":
            daemon.wait_ready(20)
            assert daemon.stop() == 0
    deadline = time.monotonic() + 10  # the resource tracker and the stages exit after it
    while time.monotonic() < deadline and (
        segments_of(pid) or any(_alive(stage) for stage in stages.values())
    ):
        time.sleep(0.1)
    assert segments_of(pid) == []
    assert not [stage for stage, child in stages.items() if _alive(child)]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
