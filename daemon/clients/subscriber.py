"""The pure part of `defectd tail`: one readable line per event, and gap detection.

No sockets here: the tail loop receives ``[topic, json]``, calls
`daemon.events.decode_message`, then `GapDetector.observe` and `format_event`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from defectd.daemon.topics import DEFECT, FRAME, STATUS, kind_of


def format_event(topic: str, payload: Mapping[str, Any], tz: dt.tzinfo | None = None) -> str:
    """One line for a decoded message, e.g.
    ``12:00:01.234 defect line1/cam0 #1234 class 3 scratches: 2 regions, 5,120 px, max p 0.97``.

    Defects and frames are stamped with their capture time, status with its publish time, in
    `tz` (None: the local zone). A message this code cannot lay out is shown as topic and JSON
    rather than stopping the tail.
    """
    kind = kind_of(topic)
    try:
        if kind == DEFECT:
            return _defect_line(payload, tz)
        if kind == FRAME:
            return _frame_line(payload, tz)
        if kind == STATUS:
            return _status_line(payload, tz)
    except (KeyError, TypeError, ValueError, IndexError, OverflowError):
        pass
    return f"{_text(topic)} {json.dumps(payload, separators=(',', ':'))}"


def clock(ns: int, tz: dt.tzinfo | None = None) -> str:
    """``HH:MM:SS.mmm`` of a Unix time in ns (integer arithmetic: no float rounding)."""
    seconds, rest = divmod(int(ns), 1_000_000_000)
    stamp = dt.datetime.fromtimestamp(seconds, tz or dt.UTC)
    if tz is None:
        stamp = stamp.astimezone()
    return f"{stamp:%H:%M:%S}.{rest // 1_000_000:03d}"


@dataclass(frozen=True)
class Gap:
    """Messages a subscriber did not get on one topic."""

    topic: str
    expected: int  # the topic_seq that should have come next
    received: int  # the topic_seq that came
    missed: int
    restarted: bool  # the publisher's run_id changed: numbering started again at 0


class GapDetector:
    """Finds missed messages from each topic's ``topic_seq`` and ``run_id``.

    The first message seen on a topic sets the baseline (what came before the subscriber
    joined is not a gap). After that, a number above the expected one is a gap; a new
    ``run_id`` is a daemon restart, and its messages 0 … topic_seq−1 were missed.
    """

    def __init__(self) -> None:
        self._next: dict[str, tuple[str, int]] = {}  # topic → (run_id, expected topic_seq)
        self.missed: dict[str, int] = {}  # topic → messages missed so far
        self.restarts = 0

    @property
    def total_missed(self) -> int:
        return sum(self.missed.values())

    def observe(self, topic: str, payload: Mapping[str, Any]) -> Gap | None:
        """Record one received message; the `Gap` before it, or None when nothing was missed."""
        seq = int(payload["topic_seq"])
        run = str(payload.get("run_id", ""))
        last = self._next.get(topic)
        self._next[topic] = (run, seq + 1)
        if last is None:
            return None
        last_run, expected = last
        if run != last_run:
            self.restarts += 1
            gap = Gap(topic, 0, seq, seq, restarted=True)
        elif seq > expected:
            gap = Gap(topic, expected, seq, seq - expected, restarted=False)
        else:
            # In order, or (never over one PUB→SUB link) a repeat: nothing missed.
            return None
        if gap.missed:
            self.missed[topic] = self.missed.get(topic, 0) + gap.missed
        return gap


def format_gap(gap: Gap) -> str:
    """One line saying what was missed, for the tail's output."""
    missed = _plural(gap.missed, "message")
    if gap.restarted:
        return f"{_text(gap.topic)}: publisher restarted, {missed} of its new run missed"
    numbers = str(gap.expected) if gap.missed == 1 else f"{gap.expected}–{gap.received - 1}"
    return f"{_text(gap.topic)}: {missed} missed (topic_seq {numbers})"


def _defect_line(payload: Mapping[str, Any], tz: dt.tzinfo | None) -> str:
    regions: Sequence[Mapping[str, Any]] = payload["regions"]
    name = _text(payload["class_name"])
    text = (
        f"{_head(DEFECT, payload, tz)} class {int(payload['class_id'])} {name}: "
        f"{_plural(int(payload['region_count']), 'region')}, {int(payload['area_px']):,} px"
    )
    if regions:
        text += f", max p {max(float(r['max_score']) for r in regions):.2f}"
    return text + _coil(payload)


def _frame_line(payload: Mapping[str, Any], tz: dt.tzinfo | None) -> str:
    classes: Sequence[str] = payload["classes"]
    found = "clean"
    if classes:
        names = ", ".join(map(_text, classes))
        found = f"{_plural(int(payload['defect_count']), 'defect')} in {names}"
    latency = float(payload["latency_ms"])
    inside = float(payload["daemon_latency_ms"])
    return (
        f"{_head(FRAME, payload, tz)} {found}, latency {latency:.1f} ms "
        f"(in daemon {inside:.1f} ms), batch {int(payload['batch_size'])}" + _coil(payload)
    )


def _status_line(payload: Mapping[str, Any], tz: dt.tzinfo | None) -> str:
    frames = payload["frames"]
    dropped: Mapping[str, int] = frames["dropped"]
    slots = payload["slots"]
    engine = payload["engine"]
    parts = [
        f"{clock(payload['publish_ns'], tz)} {STATUS:<6} "
        + ("ready" if payload["ready"] else "starting"),
        f"up {_duration(float(payload['uptime_s']))}",
        f"{float(payload['fps']):.1f} fps",
    ]
    counts = (
        f"frames {int(frames['received']):,} received {int(frames['processed']):,} processed "
        f"{sum(map(int, dropped.values())):,} dropped"
    )
    reasons = [f"{_text(reason)} {int(count):,}" for reason, count in dropped.items() if count]
    if reasons:
        counts += f" ({', '.join(reasons)})"
    parts.append(f"{counts} {int(frames['lost']):,} lost")
    parts.append(f"queue {int(payload['queue_depth'])}")
    parts.append(f"slots {int(slots['used'])}/{int(slots['total'])}")
    if engine is None:
        parts.append("engine loading")
    else:
        parts.append(
            _text(f"{engine['backend']} {engine['precision']} on {engine['device']}")
            + f", {_text(engine['model'])}"
        )
    return ", ".join(parts)


def _head(kind: str, payload: Mapping[str, Any], tz: dt.tzinfo | None) -> str:
    return (
        f"{clock(payload['capture_ns'], tz)} {kind:<6} "
        f"{_text(payload['line'])}/{_text(payload['camera_id'])} #{int(payload['seq'])}"
    )


def _coil(payload: Mapping[str, Any]) -> str:
    coil, position = payload.get("coil_id"), payload.get("position_m")
    text = f", coil {_text(coil)}" if coil is not None else ""
    if position is not None:
        text += f" @ {float(position):,.1f} m" if text else f", at {float(position):,.1f} m"
    return text


def _text(value: Any) -> str:
    """`value` with control characters escaped: a coil id from the wire must not be able to
    drive the operator's terminal (ANSI escapes, fake new lines)."""
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(value)
    )


def _duration(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")
