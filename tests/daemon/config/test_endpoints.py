"""Endpoints, the HTTP bind address and camera ids: what parses, and what each mistake says."""

from __future__ import annotations

import pytest

from defectd.daemon.config import parse_endpoint, parse_http_bind
from tests.daemon.config.helpers import camera, config, only_problem


@pytest.mark.parametrize(
    "text", ["tcp://10.0.0.1:5555", "tcp://[::1]:5555", "tcp://eth0:1", "tcp://cam-3.line:65535"]
)
def test_valid_tcp_endpoints(text: str) -> None:
    assert parse_endpoint(text, bind=False).transport == "tcp"


def test_endpoint_parts() -> None:
    assert parse_endpoint("tcp://*:5570", bind=True).port == 5570
    assert parse_endpoint("ipc:///run/defectd/cams.sock").address == "/run/defectd/cams.sock"
    assert parse_endpoint("inproc://cameras").transport == "inproc"
    assert parse_http_bind("[::1]:9108").host == "[::1]"


@pytest.mark.parametrize(
    ("endpoint", "mode", "expected"),
    [
        ("udp://10.0.0.1:5555", "connect", "is not a ZeroMQ endpoint: use tcp://HOST:PORT"),
        ("10.0.0.1:5555", "connect", "is not a ZeroMQ endpoint"),
        ("tcp://10.0.0.1", "connect", "needs a host and a port, like tcp://192.168.10.21:5555"),
        ("tcp://10.0.0.1:99999", "connect", "port '99999' is not a number in 1..65535"),
        ("tcp://10.0.0.1:*", "bind", "give a fixed port"),
        ("tcp://*:5555", "connect", "'*' (every interface) is for binding"),
        ("tcp://::1:5555", "connect", "write an IPv6 address in brackets"),
        ("tcp://cam 1:5555", "connect", "empty or has spaces"),
        ("tcp://cam;x:5555", "connect", "is not a host name, address or interface"),
        ("ipc://", "bind", "empty or has spaces"),
        ("ipc:///" + "x" * 120, "bind", "Unix sockets take at most 107"),
    ],
)
def test_invalid_endpoints(endpoint: str, mode: str, expected: str) -> None:
    problem = only_problem(config(cameras=[camera(endpoint=endpoint, mode=mode)]))
    assert problem.startswith("test.yaml: cameras[0].endpoint: "), problem
    assert expected in problem


@pytest.mark.parametrize(
    ("camera_id", "expected"),
    [
        ("top.0", "cannot be used in a topic: use 1 to 64 characters from A-Z a-z 0-9 _ -"),
        ("kamera-ü", "for example 'kamera-_'"),
        ("c" * 33, "has 33 characters, frame slots hold 32"),
    ],
)
def test_bad_camera_ids(camera_id: str, expected: str) -> None:
    problem = only_problem(config(cameras=[camera(id=camera_id)]))
    assert problem.startswith("test.yaml: cameras[0].id: ") and expected in problem
