"""The gateway's side channel: coil and encoder readings over a real ZeroMQ PUB on loopback."""

from __future__ import annotations

import json
import time

import pytest
import zmq

from defectd.daemon.clients.camera.side_channel import SideChannel, StripState, apply_update


def test_updates_apply_key_by_key_and_position_moves_on_with_speed() -> None:
    state = StripState(coil_id="C-0")
    state = apply_update(state, b'{"position_m": 100.0, "speed_m_per_s": 4.0, "at_ns": 0}', 9)
    assert state == StripState("C-0", 100.0, 4.0, 0)
    assert state.position_at(500_000_000) == pytest.approx(102.0)
    state = apply_update(state, b'{"coil_id": "C-1"}', 10)
    assert state.coil_id == "C-1" and state.position_m == 100.0  # the rest kept
    state = apply_update(state, b'{"position_m": 0.5}', 77)
    assert state.at_ns == 77  # read when it arrived
    assert apply_update(state, b'{"coil_id": null}', 0).coil_id is None
    assert StripState(position_m=3.0).position_at(10**12) == 3.0  # no speed: as read


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        (b"pos=3", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"coil": "x"}', "unknown key"),
        (b'{"coil_id": 7}', "coil_id must be"),
        (b'{"position_m": "12"}', "position_m must be a number"),
        (b'{"speed_m_per_s": true}', "speed_m_per_s must be a number"),
        (b'{"position_m": 1, "at_ns": 1.5}', "at_ns must be"),
    ],
)
def test_bad_messages_say_what_is_wrong(message: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        apply_update(StripState(), message, 0)


def test_a_real_publisher_feeds_the_channel_and_bad_messages_are_counted() -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    publisher = context.socket(zmq.PUB)
    port = publisher.bind_to_random_port("tcp://127.0.0.1")
    channel = SideChannel(context, f"tcp://127.0.0.1:{port}", StripState(coil_id="C-0"))
    try:
        deadline = time.monotonic() + 10
        while channel.updates == 0 and time.monotonic() < deadline:  # until subscribed
            publisher.send(json.dumps({"position_m": 1.0}).encode())
            time.sleep(0.05)
            channel.poll()
        assert channel.updates >= 1, "the subscription never took"
        publisher.send(b"garbage")
        publisher.send(json.dumps({"coil_id": "C-9", "position_m": 42.0}).encode())
        deadline = time.monotonic() + 5
        while channel.state.coil_id != "C-9" and time.monotonic() < deadline:
            time.sleep(0.02)
            channel.poll()
        assert channel.state.coil_id == "C-9" and channel.state.position_m == 42.0
        assert channel.rejected == 1
    finally:
        channel.close()
        publisher.close(0)
        context.term()
