"""The sending loop over real ZeroMQ sockets on loopback: what a receiver gets is valid
protocol, numbered per camera and paced; pub waits for subscribers; sockets are shared or
separate as the endpoints say."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from defectd.daemon.clients.simulator import (
    Simulator,
    SimulatorConfig,
    SimulatorError,
    SimulatorResult,
    parse_truth_image_id,
    truth_image_id,
)
from defectd.daemon.decode import decode_frame
from defectd.daemon.protocol import read_message
from defectd.engines.labels import read_labels
from defectd.engines.rle import decode
from defectd.engines.synth import SyntheticLine
from tests.daemon.clients.simulator.helpers import (
    SHAPE,
    headers_by_camera,
    push_config,
    receive,
    run_in_thread,
)

# -- push: every frame arrives -----------------------------------------------------------------


def test_push_frames_are_valid_numbered_and_match_the_truth(
    pull: tuple[zmq.Socket[bytes], str], tmp_path: Path
) -> None:
    socket, endpoint = pull
    truth_path = tmp_path / "truth.csv"
    config = push_config(endpoint, seed=5, coil_frames=2, mm_per_px=0.5, truth_out=truth_path)
    result = Simulator(config).run()
    assert [(c.camera_id, c.sent) for c in result.cameras] == [("a", 3), ("b", 3)]
    assert result.truth_frames == 6 and not result.stopped

    line = SyntheticLine(5)
    messages = receive(socket, has_topic=False)
    assert len(messages) == 6
    for parts in messages:
        message = read_message(parts, has_topic=False)
        header = message.header
        assert (header.encoding, header.height, header.width) == ("mono8", *SHAPE)
        assert message.payload.nbytes == SHAPE[0] * SHAPE[1]
        index = header.seq * 2 + ("a", "b").index(header.camera_id)  # frame k of the run
        image = decode_frame(header, message.payload, SHAPE)
        np.testing.assert_array_equal(image, line.frame(index).image)
        assert header.coil_id == f"SIM-{header.seq // 2 + 1:05d}"
        assert header.position_m == pytest.approx((header.seq % 2) * 256 * 0.5 / 1000)
    by_camera = headers_by_camera(messages, has_topic=False)
    for camera in ("a", "b"):
        headers = by_camera[camera]
        assert [h.seq for h in headers] == [0, 1, 2]
        assert all(x.capture_ns <= y.capture_ns for x, y in itertools.pairwise(headers))

    truth = read_labels(truth_path)
    expected_ids = {truth_image_id(c, s) for c in ("a", "b") for s in range(3)}
    assert set(truth.masks) == expected_ids, "every frame sent is in the truth, clean or not"
    for image_id in expected_ids:
        camera, seq = parse_truth_image_id(image_id)
        frame = line.frame(seq * 2 + ("a", "b").index(camera))
        for class_id in range(1, 5):
            decoded = decode(truth.rle(image_id, class_id), SHAPE)
            np.testing.assert_array_equal(decoded, frame.masks[class_id - 1])
    assert not (tmp_path / "truth.csv.partial").exists()


def test_push_back_pressure_slows_the_sender(
    context: zmq.Context[zmq.Socket[bytes]],
) -> None:
    receiver = context.socket(zmq.PULL)  # never reads: the queue fills, sends must wait
    receiver.setsockopt(zmq.RCVHWM, 1)
    receiver.setsockopt(zmq.LINGER, 0)
    port = receiver.bind_to_random_port("tcp://127.0.0.1")
    config = push_config(
        f"tcp://127.0.0.1:{port}",
        cameras=("cam0",),
        frames=200,
        seconds=1.0,
        sndhwm=1,
        pool=1,
        linger_ms=0,
    )
    result = Simulator(config, context=context).run()
    [camera] = result.cameras
    assert camera.sent < 200, "TCP buffers hold some frames, never 80 MB"
    assert camera.blocked_s > 0.3
    assert 0.9 < result.elapsed_s < 5


# -- pub: slow joiners, shared and separate sockets -------------------------------------------


def test_pub_waits_for_the_subscriber_and_loses_nothing(
    context: zmq.Context[zmq.Socket[bytes]],
) -> None:
    config = SimulatorConfig(
        cameras=("cam0", "cam1"),
        fps=0,
        frames=4,
        endpoint="tcp://127.0.0.1:*",
        wait_subscribers=1,
        wait_timeout_s=10,
        pool=2,
    )
    simulator = Simulator(config, context=context)
    thread, results = run_in_thread(simulator, threading.Event())
    assert len(set(simulator.endpoints)) == 1, "cameras binding one endpoint share a socket"
    time.sleep(0.2)  # the simulator is waiting: nothing may be sent before the SUB joins
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(simulator.endpoints[0])
    messages = receive(sub, has_topic=True)
    thread.join(10)
    assert not thread.is_alive() and results[0].sent == 8
    by_camera = headers_by_camera(messages, has_topic=True)
    assert {camera: [h.seq for h in hs] for camera, hs in by_camera.items()} == {
        "cam0": [0, 1, 2, 3],
        "cam1": [0, 1, 2, 3],
    }
    assert all(
        parts[0] == read_message(parts, True).header.camera_id.encode() for parts in messages
    )


def test_pub_per_camera_endpoints(context: zmq.Context[zmq.Socket[bytes]], tmp_path: Path) -> None:
    config = SimulatorConfig(
        cameras=("top", "bottom"),
        fps=0,
        frames=2,
        endpoint=f"ipc://{tmp_path}/{{camera}}.sock",
        wait_subscribers=1,
        wait_timeout_s=10,
        pool=1,
    )
    simulator = Simulator(config, context=context)
    thread, results = run_in_thread(simulator, threading.Event())
    assert simulator.endpoints == (f"ipc://{tmp_path}/top.sock", f"ipc://{tmp_path}/bottom.sock")
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    for endpoint in simulator.endpoints:
        sub.connect(endpoint)
    messages = receive(sub, has_topic=True)
    thread.join(10)
    assert results[0].sent == 4
    by_camera = headers_by_camera(messages, has_topic=True)
    assert {camera: len(headers) for camera, headers in by_camera.items()} == {
        "top": 2,
        "bottom": 2,
    }


def test_pub_gives_up_when_a_camera_has_no_subscriber(
    context: zmq.Context[zmq.Socket[bytes]],
) -> None:
    config = SimulatorConfig(
        cameras=("cam0", "cam1"),
        frames=1,
        endpoint="tcp://127.0.0.1:*",
        wait_subscribers=1,
        wait_timeout_s=1.0,
    )
    simulator = Simulator(config, context=context)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            simulator.run()
        except SimulatorError as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert simulator.bound.wait(10)
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"cam1")  # only cam1 gets a subscriber
    sub.connect(simulator.endpoints[0])
    thread.join(10)
    assert len(errors) == 1
    assert "no subscriber for camera(s) cam0 after 1 s" in str(errors[0])


def test_bind_failure_names_the_endpoint(context: zmq.Context[zmq.Socket[bytes]]) -> None:
    taken = context.socket(zmq.PUB)
    taken.setsockopt(zmq.LINGER, 0)
    port = taken.bind_to_random_port("tcp://127.0.0.1")
    config = SimulatorConfig(frames=1, endpoint=f"tcp://127.0.0.1:{port}")
    with pytest.raises(SimulatorError, match=f"camera cam0 cannot bind tcp://127.0.0.1:{port}"):
        Simulator(config, context=context).run()


# -- pacing and stopping (loose bounds: a check of the schedule, not a benchmark) -------------


def test_fps_paces_each_camera(pull: tuple[zmq.Socket[bytes], str]) -> None:
    _, endpoint = pull
    config = push_config(endpoint, fps=20.0, frames=6, pool=2)
    started = time.monotonic()
    result = Simulator(config).run()
    elapsed = time.monotonic() - started
    assert 0.2 < elapsed < 2.0  # 5 periods of 50 ms after the first frame
    for camera in result.cameras:
        assert camera.sent == 6
        assert 12 < camera.fps < 30


def test_seconds_limits_the_run(pull: tuple[zmq.Socket[bytes], str]) -> None:
    _, endpoint = pull
    config = push_config(endpoint, fps=10.0, frames=None, seconds=0.45, pool=1)
    result = Simulator(config).run()
    assert all(3 <= camera.sent <= 5 for camera in result.cameras)  # due at 0, .1, .2, .3, .4
    assert not result.stopped and result.elapsed_s < 2


def test_stop_event_ends_an_endless_run(pull: tuple[zmq.Socket[bytes], str]) -> None:
    _, endpoint = pull
    stop = threading.Event()
    simulator = Simulator(push_config(endpoint, fps=5.0, frames=None, pool=1))
    thread, results = run_in_thread(simulator, stop)
    time.sleep(0.5)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert results[0].stopped and results[0].sent >= 2


def test_progress_is_reported(pull: tuple[zmq.Socket[bytes], str]) -> None:
    _, endpoint = pull
    seen: list[SimulatorResult] = []
    config = push_config(endpoint, fps=20.0, frames=8, pool=1, status_interval_s=0.1)
    Simulator(config, progress=seen.append).run()
    assert len(seen) >= 2
    assert [r.sent for r in seen] == sorted(r.sent for r in seen)
