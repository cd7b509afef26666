"""Fixtures for the simulator tests: a bound PULL socket, as the daemon's ingest would have
(on tests/conftest.py's ZeroMQ context)."""

from __future__ import annotations

import pytest
import zmq


@pytest.fixture
def pull(context: zmq.Context[zmq.Socket[bytes]]) -> tuple[zmq.Socket[bytes], str]:
    """A bound PULL socket, as the daemon's ingest would have, and its endpoint."""
    socket = context.socket(zmq.PULL)
    socket.setsockopt(zmq.LINGER, 0)
    port = socket.bind_to_random_port("tcp://127.0.0.1")
    return socket, f"tcp://127.0.0.1:{port}"
