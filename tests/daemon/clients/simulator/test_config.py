"""Simulator configuration: endpoint placeholders, the checks on every option, and the
linger that depends on the mode."""

from __future__ import annotations

from dataclasses import replace

import pytest

from defectd.daemon.clients.simulator import SimulatorConfig, camera_endpoint


def test_endpoint_placeholders() -> None:
    assert camera_endpoint("tcp://127.0.0.1:{5555+i}", 2, "cam2") == "tcp://127.0.0.1:5557"
    assert camera_endpoint("ipc:///run/{camera}-{i}", 1, "top") == "ipc:///run/top-1"
    assert camera_endpoint("tcp://*:5555", 3, "x") == "tcp://*:5555"
    with pytest.raises(ValueError, match="unknown placeholder"):
        camera_endpoint("tcp://127.0.0.1:{port}", 0, "cam0")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cameras": ()}, "at least one camera"),
        ({"cameras": ("cam.0",)}, "camera id 'cam.0' cannot be used"),
        ({"cameras": ("a", "a")}, "a repeats"),
        ({"fps": -1.0}, "fps must be at least 0"),
        ({"frames": 0}, "frames must be at least 1"),
        ({"encoding": "rgb8"}, "encoding 'rgb8'"),
        ({"mode": "push", "wait_subscribers": 1}, "wait_subscribers is for pub mode"),
        ({"coil_frames": 5, "coil_prefix": "x" * 70}, "coil_id must be"),
    ],
)
def test_config_errors(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(SimulatorConfig(), **changes)  # type: ignore[arg-type]


def test_push_waits_longer_for_queued_frames_at_the_end() -> None:
    push = SimulatorConfig(mode="push", bind=False)
    assert push.effective_linger_ms == 30_000, "push promises every frame"
    assert SimulatorConfig().effective_linger_ms == 1_000
    assert replace(push, linger_ms=0).effective_linger_ms == 0
