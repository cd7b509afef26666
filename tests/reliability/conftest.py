"""Fixtures of the reliability tests: a ZeroMQ context, and segments in /dev/shm."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import zmq


@pytest.fixture
def context() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def segments_of(pid: int) -> list[str]:
    """The daemon's shared-memory segments still in /dev/shm (`SlotPool.create` names them
    ``defectd-<supervisor pid>-<random>``)."""
    return [name for name in os.listdir("/dev/shm") if name.startswith(f"defectd-{pid}-")]
