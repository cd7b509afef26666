"""Published messages: typed events, their JSON, and per-topic sequence numbers.

Three kinds, each a frozen dataclass with a versioned schema name (docs/events.md,
docs/schemas/):

- `DefectEvent` (``defectd.defect/1``): one per (frame, class) with a kept mask;
- `FrameSummary` (``defectd.frame/1``): one per processed frame, clean or not;
- `StatusEvent` (``defectd.status/1``): the heartbeat, once a second.

`messages` holds the event types and the builders `defect_events` and `frame_summary`, which
turn a frame's `FrameDefects` into events, so the publisher only calls `encode` and sends.
`codec` is the wire: `encode` gives the multipart message ``[topic, json]``; the JSON starts
with ``schema``, ``topic_seq`` (0, 1, 2, … per exact topic) and ``run_id`` (one per publisher
run), which is what lets a subscriber tell a missed message from a daemon restart
(`daemon.clients.subscriber.GapDetector`); `decode_message` checks a received one.
"""

from __future__ import annotations

from defectd.daemon.events.codec import MessageError, TopicSequencer, decode_message, encode
from defectd.daemon.events.messages import (
    COIL_SCHEMA,
    DEFECT_SCHEMA,
    FRAME_SCHEMA,
    MAX_REGIONS,
    SCHEMA_VERSION,
    SCHEMAS,
    STATUS_SCHEMA,
    CoilEvent,
    DefectEvent,
    Event,
    FrameCounts,
    FrameMeta,
    FrameSummary,
    RateMeter,
    Region,
    StatusEvent,
    defect_events,
    frame_summary,
)

__all__ = [
    "COIL_SCHEMA",
    "DEFECT_SCHEMA",
    "FRAME_SCHEMA",
    "MAX_REGIONS",
    "SCHEMAS",
    "SCHEMA_VERSION",
    "STATUS_SCHEMA",
    "CoilEvent",
    "DefectEvent",
    "Event",
    "FrameCounts",
    "FrameMeta",
    "FrameSummary",
    "MessageError",
    "RateMeter",
    "Region",
    "StatusEvent",
    "TopicSequencer",
    "decode_message",
    "defect_events",
    "encode",
    "frame_summary",
]
