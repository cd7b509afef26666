"""`defectd simulate` end to end: a real PULL socket receives what the command sends."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from defectd.daemon.cli import main
from defectd.daemon.commands.simulate import stop_on_signals
from defectd.daemon.protocol import read_message
from defectd.engines.labels import read_labels


@pytest.fixture
def pull() -> Iterator[tuple[zmq.Socket[bytes], str]]:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    socket = context.socket(zmq.PULL)
    socket.setsockopt(zmq.LINGER, 0)
    port = socket.bind_to_random_port("tcp://127.0.0.1")
    yield socket, f"tcp://127.0.0.1:{port}"
    context.destroy(linger=0)


def test_simulate_push_with_truth(
    pull: tuple[zmq.Socket[bytes], str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    socket, endpoint = pull
    truth = tmp_path / "truth.csv"
    argv = ["simulate", "--mode", "push", "--connect", endpoint, "--camera-ids", "top,bottom"]
    argv += ["--frames", "3", "--fps", "0", "--truth-out", str(truth), "--coil-frames", "2"]
    assert main(argv) == 0
    headers = []
    while len(headers) < 6 and socket.poll(5000):
        headers.append(read_message(socket.recv_multipart(), has_topic=False).header)
    assert sorted((h.camera_id, h.seq) for h in headers) == [
        ("bottom", 0),
        ("bottom", 1),
        ("bottom", 2),
        ("top", 0),
        ("top", 1),
        ("top", 2),
    ]
    assert {h.coil_id for h in headers} == {"SIM-00001", "SIM-00002"}
    assert set(read_labels(truth).masks) == {
        f"{c}-{s}.jpg" for c in ("top", "bottom") for s in (0, 1, 2)
    }
    captured = capsys.readouterr()
    assert captured.out.startswith("done: 6 frames from 2 camera(s) in ")
    assert f"(push connected to {endpoint})" in captured.out
    assert any(line.split()[:2] == ["top", "3"] for line in captured.out.splitlines())
    assert f"truth of 6 frames: {truth}" in captured.out
    assert "simulating line line1: 2 camera(s) from synthetic line seed 0" in captured.err


def test_simulate_cameras_default_ids(
    pull: tuple[zmq.Socket[bytes], str], capsys: pytest.CaptureFixture[str]
) -> None:
    socket, endpoint = pull
    argv = ["simulate", "--mode", "push", "--connect", endpoint, "--cameras", "3"]
    assert main([*argv, "--frames", "1", "--fps", "0", "--pool", "1", "--quiet"]) == 0
    ids = []
    while len(ids) < 3 and socket.poll(5000):
        ids.append(read_message(socket.recv_multipart(), has_topic=False).header.camera_id)
    assert sorted(ids) == ["cam0", "cam1", "cam2"]
    assert "done: 3 frames" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--mode", "push", "--wait-subscribers", "1"], "wait_subscribers is for pub mode"),
        (["--source", "no/such/folder"], "neither 'synth' nor a folder"),
        (["--cameras", "0"], "--cameras must be at least 1"),
        (["--camera-ids", "a,a"], "a repeats"),
        (["--fps", "-2"], "fps must be at least 0"),
        (["--bind", "tcp://127.0.0.1:{port}"], "unknown placeholder"),
        (["--bind", "nonsense"], "cannot bind nonsense"),
        # accepted and then ignored, once: now refused
        (["--jpeg-quality", "80"], "--jpeg-quality has no effect unless frames are encoded"),
        (["--cameras", "3", "--camera-ids", "a,b"], "--cameras has no effect with --camera-ids"),
        (["--wait-timeout", "5"], "--wait-timeout has no effect without --wait-subscribers"),
    ],
)
def test_simulate_errors(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", "--frames", "1", "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    assert "defectd simulate: error: " in err and message in err


def test_simulate_truth_from_a_plain_folder_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import cv2
    import numpy as np

    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((8, 8), np.uint8))
    argv = ["simulate", "--source", str(tmp_path), "--truth-out", str(tmp_path / "t.csv")]
    assert main(argv) == 2
    assert "Severstal-layout folder" in capsys.readouterr().err


def test_sigterm_stops_an_endless_run_cleanly(
    pull: tuple[zmq.Socket[bytes], str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, endpoint = pull
    before = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(0.8, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        argv = ["simulate", "--mode", "push", "--connect", endpoint, "--fps", "10"]
        assert main([*argv, "--pool", "1", "--quiet", "--linger", "0"]) == 0
    finally:
        timer.cancel()
    out = capsys.readouterr().out
    assert out.startswith("stopped: ")
    assert signal.getsignal(signal.SIGTERM) is before, "the handler is put back"


def test_a_second_signal_interrupts() -> None:
    stop = threading.Event()
    with pytest.raises(KeyboardInterrupt), stop_on_signals(stop):
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.wait(5)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # the handler raises before this ends
