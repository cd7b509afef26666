"""Where the strip is: coil id and encoder position for the gateway's frame headers.

The frame headers' ``coil_id`` and ``position_m`` come from the gateway's config, and, when
``side_channel`` names a ZeroMQ endpoint, from the plant: a PLC bridge (or the line's
tracking system) publishes one-part JSON messages on a PUB socket the gateway's SUB connects
to, each with any of

    {"coil_id": "C24-08151", "position_m": 812.4, "speed_m_per_s": 4.2, "at_ns": 17...}

``at_ns`` is when ``position_m`` was read (host wall clock, ns; default: when the message
arrived). A frame's position is then the last reading moved on by the speed to the frame's
capture time, so an encoder read ten times a second still places 50 frames a second.
``"coil_id": null`` ends a coil. A message that is not such JSON is counted and skipped,
never fatal; docs/cameras.md shows a sender.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

import zmq

log = logging.getLogger(__name__)
_KEYS = ("coil_id", "position_m", "speed_m_per_s", "at_ns")


@dataclass(frozen=True)
class StripState:
    """The latest coil and encoder reading."""

    coil_id: str | None = None
    position_m: float | None = None
    speed_m_per_s: float | None = None
    at_ns: int | None = None

    def position_at(self, capture_ns: int) -> float | None:
        """The strip position at `capture_ns`: the reading moved on by the speed."""
        if self.position_m is None:
            return None
        if self.speed_m_per_s is None or self.at_ns is None:
            return self.position_m
        return self.position_m + self.speed_m_per_s * (capture_ns - self.at_ns) / 1e9


def apply_update(state: StripState, message: bytes, now_ns: int) -> StripState:
    """`state` with the keys of one side-channel message; ValueError naming what is wrong."""
    try:
        values = json.loads(message)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(values, dict) or not values:
        raise ValueError("expected a JSON object with coil_id, position_m, speed_m_per_s, at_ns")
    unknown = sorted(set(values) - set(_KEYS))
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(_KEYS)}")
    changes: dict[str, Any] = {}
    if "coil_id" in values:
        coil = values["coil_id"]
        if coil is not None and (not isinstance(coil, str) or not coil):
            raise ValueError(f"coil_id must be a non-empty string or null, got {coil!r}")
        changes["coil_id"] = coil
    for key in ("position_m", "speed_m_per_s"):
        if key in values:
            number = values[key]
            if number is not None and (
                isinstance(number, bool) or not isinstance(number, int | float)
            ):
                raise ValueError(f"{key} must be a number or null, got {number!r}")
            changes[key] = None if number is None else float(number)
    if "position_m" in values:
        at = values.get("at_ns", now_ns)
        if isinstance(at, bool) or not isinstance(at, int):
            raise ValueError(f"at_ns must be wall-clock nanoseconds, got {at!r}")
        changes["at_ns"] = at
    return replace(state, **changes)


class SideChannel:
    """A SUB socket on the plant's publisher; `poll` drains it without waiting."""

    def __init__(
        self, context: zmq.Context[zmq.Socket[bytes]], endpoint: str, initial: StripState
    ) -> None:
        self.state = initial
        self.updates = 0
        self.rejected = 0
        self._socket = context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SUBSCRIBE, b"")
        self._socket.connect(endpoint)
        self._endpoint = endpoint

    def poll(self) -> StripState:
        """Apply every message waiting; the latest state."""
        while True:
            try:
                message = self._socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return self.state
            try:
                self.state = apply_update(self.state, message, time.time_ns())
                self.updates += 1
            except ValueError as exc:
                self.rejected += 1
                log.warning("side channel %s: message skipped: %s", self._endpoint, exc)

    def close(self) -> None:
        self._socket.close()
