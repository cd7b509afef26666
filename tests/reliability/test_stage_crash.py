"""A post-processing worker or the publisher SIGKILLed under full load.

Idle stages killed: tests/daemon/test_pipeline.py::
test_an_idle_stage_killed_is_restarted_and_the_pipeline_goes_on; the inference process under
load: ::test_killed_inference_restarts_and_its_frames_count_as_crash_drops.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
import zmq

from defectd.daemon.tools.loopback import DaemonProcess, Listener, LoopbackPorts, metric
from tests.daemon.pipeline_helpers import small_line
from tests.daemon.test_pipeline import ONNX
from tests.reliability.conftest import segments_of
from tests.reliability.test_shutdown import STOPPED, Pusher

pytestmark = pytest.mark.slow
KINDS = {"post0": "postprocess", "pub": "publisher"}


@pytest.mark.parametrize("stage", sorted(KINDS))
def test_a_stage_killed_under_load_is_restarted_and_every_frame_stays_accounted(
    stage: str, tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    ports = LoopbackPorts()
    config = small_line(ports, slots={"count": 16})
    with (
        DaemonProcess(config, tmp_path, ports) as daemon,
        Listener(ports.publish_endpoint, strict=True) as subscriber,
    ):
        daemon.wait_ready()
        before = daemon.children()
        assert subscriber.wait_subscribed()
        with Pusher(context, ports.camera_endpoint) as pusher:
            subscriber.until(lambda: len(subscriber.summaries()) >= 50, 20, "frames under load")
            os.kill(before[stage], signal.SIGKILL)
            deadline = time.monotonic() + 15
            while daemon.children().get(stage) in (None, before[stage]):
                assert time.monotonic() < deadline, "no replacement started"
                time.sleep(0.05)
            daemon.wait_ready(15)
            published = len(subscriber.summaries())
            subscriber.until(
                lambda: len(subscriber.summaries()) >= published + 50, 20, "frames after restart"
            )
        sent = pusher.sent
        after = daemon.children()
        exposition = daemon.metrics()
        assert metric(exposition, "defectd_worker_restarts_total", kind=KINDS[stage]) == 1
        assert {name: pid for name, pid in after.items() if name != stage} == {
            name: pid for name, pid in before.items() if name != stage
        }  # the receiver kept its socket, nothing else restarted
        assert daemon.stop() == 0
        pid = daemon.process.pid
    log = daemon.log_text()
    found = STOPPED.search(log)
    assert found, log
    received, processed = int(found[1]), int(found[2])
    dropped = {k: int(v) for k, v in re.findall(r"'(\w+)': (\d+)", found[3])}
    print(f"{stage} killed under load: sent {sent}, stop line {found[0]}")
    assert received == processed + sum(dropped.values()) and 0 < received <= sent
    # Frames the dead stage held: counted worker_crash (slot reclaimed), or, for a clean
    # frame's message lost in its socket, shutdown at stop (docs/daemon.md, known gaps).
    assert set(dropped) <= {"worker_crash", "shutdown", "timeout"}
    assert f"{KINDS[stage]}" in log and "died with exit code -9" in log
    assert segments_of(pid) == []


def test_readyz_is_503_until_a_restarted_inference_engine_is_warm(
    tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    """What ::test_killed_inference_restarts_and_its_frames_count_as_crash_drops does not
    look at: readiness while the replacement opens and warms its engine."""
    ports = LoopbackPorts()
    config = small_line(ports, engine=ONNX, slots={"count": 16})
    with DaemonProcess(config, tmp_path, ports) as daemon:
        daemon.wait_ready()
        with Pusher(context, ports.camera_endpoint):
            time.sleep(1.0)
            killed = time.monotonic()
            os.kill(daemon.children()["infer"], signal.SIGKILL)
            answers: list[tuple[float, int, str]] = []
            while time.monotonic() < killed + 60:
                code, body = daemon.http("/readyz")
                answers.append((time.monotonic() - killed, code, body))
                if code == 200 and any(c == 503 for _, c, _ in answers):
                    break
                time.sleep(0.02)
        not_ready = [(t, body) for t, code, body in answers if code == 503]
        assert not_ready, "never 503 after the kill"
        assert answers[-1][1] == 200, "not ready again within 60 s"
        # Each 503 is the inference stage's: first its process is gone (the supervisor may
        # see that a moment before it resets the engine flag), then its engine is not warm;
        # the last 503 before the 200 is the engine still warming.
        inference_down = ('"engine": false', '"stage:inference": false')
        assert all(any(s in body for s in inference_down) for _, body in not_ready), not_ready
        assert '"engine": false' in not_ready[-1][1], not_ready[-1]
        # ready only once the new process reported its warm engine
        log = daemon.log_text()
        assert log.count("inference ready:") == 2
        print(
            f"readyz 503 from {not_ready[0][0]:.2f} s to {not_ready[-1][0]:.2f} s after the "
            f"kill, 200 at {answers[-1][0]:.2f} s"
        )
        assert daemon.stop() == 0
