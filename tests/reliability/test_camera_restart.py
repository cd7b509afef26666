"""A camera publisher killed and started again as a new process, its numbering from 0."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from defectd.daemon.tools.loopback import DaemonProcess, Listener, LoopbackPorts, free_port, metric
from tests.daemon.pipeline_helpers import HEIGHT, REPO, WIDTH, small_line

pytestmark = pytest.mark.slow
RESUME_S = 2.0  # from the new camera's bind to its first frame published by the daemon
FIRST_SEQ = 10_000  # the first camera has been running a while; the new one counts from 0


def start_camera(endpoint: str, start_seq: int) -> tuple[subprocess.Popen[str], int]:
    """The camera process and when (time_ns) its PUB socket was bound."""
    camera = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.reliability.pub_camera",
            endpoint,
            "cam0",
            "25",
            str(start_seq),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert camera.stdout is not None
    line = camera.stdout.readline()
    assert line.startswith("bound "), f"camera did not start: {line!r}"
    return camera, int(line.split()[1])


def test_a_restarted_camera_is_reconnected_counted_and_resumes_within_2_s(tmp_path: Path) -> None:
    ports = LoopbackPorts()
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    config = small_line(ports, batching={"policy": "drop_oldest"})
    config["cameras"] = [  # a live line: the daemon connects to a PUB
        {"id": "cam0", "endpoint": endpoint, "mode": "connect", "width": WIDTH, "height": HEIGHT}
    ]
    cameras: list[subprocess.Popen[str]] = []
    try:
        with (
            DaemonProcess(config, tmp_path, ports) as daemon,
            Listener(ports.publish_endpoint, strict=True) as subscriber,
        ):
            daemon.wait_ready()
            stages = daemon.children()
            assert subscriber.wait_subscribed()

            def seen(new: bool) -> list[dict[str, Any]]:
                return [f for f in subscriber.of("frame") if (int(f["seq"]) < FIRST_SEQ) == new]

            first, _ = start_camera(endpoint, FIRST_SEQ)
            cameras.append(first)
            subscriber.until(lambda: len(seen(new=False)) >= 20, 20, "frames of the first camera")
            first.kill()  # SIGKILL: no goodbye on the socket beyond what the kernel does
            first.wait(5)
            time.sleep(0.5)
            second, bound_ns = start_camera(endpoint, 0)
            cameras.append(second)
            subscriber.until(lambda: len(seen(new=True)) >= 10, 10, "frames of the new camera")
            resumed_s = (min(int(f["publish_ns"]) for f in seen(new=True)) - bound_ns) / 1e9
            print(f"camera restart: first frame published {resumed_s:.3f} s after the new bind")
            assert resumed_s <= RESUME_S, f"first frame published {resumed_s:.2f} s after bind"
            subscriber.until(
                lambda: metric(daemon.metrics(), "defectd_camera_resets_total", camera="cam0") == 1,
                5,
                "the reset counted",
            )
            exposition = daemon.metrics()
            for kind in ("receiver", "inference", "postprocess", "publisher"):
                assert metric(exposition, "defectd_worker_restarts_total", kind=kind) == 0
            assert daemon.children() == stages  # nothing else restarted
            assert daemon.http("/readyz")[0] == 200
            assert daemon.stop() == 0
    finally:
        for camera in cameras:
            camera.kill()
            camera.wait(5)
    log = daemon.log_text()
    assert "camera cam0 restarted its numbering" in log
    assert "Traceback" not in log
