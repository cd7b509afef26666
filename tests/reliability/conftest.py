"""Helpers of the reliability tests: segments in /dev/shm (the ZeroMQ context fixture is
tests/conftest.py's)."""

from __future__ import annotations

import os


def segments_of(pid: int) -> list[str]:
    """The daemon's shared-memory segments still in /dev/shm (`SlotPool.create` names them
    ``defectd-<supervisor pid>-<random>``)."""
    return [name for name in os.listdir("/dev/shm") if name.startswith(f"defectd-{pid}-")]
