"""The wire codec: events to ``[topic, json]`` messages and back, numbered per topic.

`encode` gives the multipart message of an event; its JSON starts with ``schema``,
``topic_seq`` (0, 1, 2, … per exact topic, from a `TopicSequencer`) and ``run_id`` (one per
publisher run), which is what lets a subscriber tell a missed message from a daemon restart
(`daemon.clients.subscriber.GapDetector`). `decode_message` is the receiving side: it checks a
message against its topic and schema version and raises `MessageError` for anything else.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from collections.abc import Sequence
from typing import Any

from defectd.daemon.events.messages import SCHEMA_VERSION, SCHEMAS, Event
from defectd.daemon.topics import kind_of

_SCHEMA_NAME = re.compile(r"defectd\.([a-z]+)/([0-9]+)")
_RUN_ID = re.compile(r"[0-9a-f]{16}")


class MessageError(ValueError):
    """A received message that is not a defectd event this code understands."""


class TopicSequencer:
    """Per-topic message numbers: 0 for the first message on a topic, then +1 per message.

    One per publisher socket, used from one thread. `run_id` is random per instance, so a
    subscriber can tell numbers that restarted with the daemon from missed messages.
    """

    def __init__(self, run_id: str | None = None) -> None:
        if run_id is None:
            run_id = secrets.token_hex(8)
        if _RUN_ID.fullmatch(run_id) is None:
            raise ValueError(f"run_id must be 16 lowercase hex digits, got {run_id!r}")
        self.run_id = run_id
        self._next: dict[str, int] = {}

    def next(self, topic: str) -> int:
        """The number of the next message on `topic` (and count it as sent)."""
        number = self._next.get(topic, 0)
        self._next[topic] = number + 1
        return number


def encode(event: Event, sequencer: TopicSequencer) -> list[bytes]:
    """The multipart message ``[topic, json]`` of `event`, numbered by `sequencer`.

    The JSON is compact UTF-8. A non-finite float (NaN, ±inf) is a ValueError naming the field;
    the number is taken first, so subscribers see the unsendable message as a gap.
    """
    topic = event.topic
    message = {
        "schema": event.SCHEMA,
        "topic_seq": sequencer.next(topic),
        "run_id": sequencer.run_id,
        **event.to_payload(),
    }
    try:
        text = json.dumps(message, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:
        raise ValueError(
            f"{event.SCHEMA} on {topic}: {_non_finite_path(message)} is not a finite number; "
            "JSON has no NaN or infinity"
        ) from None
    return [topic.encode("ascii"), text.encode("utf-8")]


def decode_message(parts: Sequence[bytes]) -> dict[str, Any]:
    """The JSON object of a received ``[topic, json]`` message, checked against its topic.

    MessageError when the message has the wrong number of parts, is not a UTF-8 JSON object,
    has no known ``schema``, a newer major version than this code, or a schema whose kind does
    not match the topic's first segment.
    """
    if len(parts) != 2:
        raise MessageError(f"expected a 2-part [topic, json] message, got {len(parts)} parts")
    try:
        topic = parts[0].decode("ascii")
        payload = json.loads(parts[1].decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MessageError(f"unreadable message on {parts[0]!r}: {exc}") from None
    if not isinstance(payload, dict):
        raise MessageError(f"message on {topic} is not a JSON object")
    schema = payload.get("schema")
    match = _SCHEMA_NAME.fullmatch(schema) if isinstance(schema, str) else None
    if match is None or match.group(1) not in SCHEMAS:
        raise MessageError(
            f"message on {topic} has schema {schema!r}; expected one of {sorted(SCHEMAS.values())}"
        )
    kind, version = match.group(1), int(match.group(2))
    if version != SCHEMA_VERSION:
        raise MessageError(
            f"message on {topic} is {schema}, this defectd reads version {SCHEMA_VERSION}: "
            "run the same defectd release on both ends"
        )
    if kind_of(topic) != kind:
        raise MessageError(f"{schema} message on topic {topic}: topic and schema disagree")
    seq = payload.get("topic_seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise MessageError(f"{schema} message on {topic} has no valid topic_seq: {seq!r}")
    return payload


def _non_finite_path(value: Any, path: str = "") -> str:
    """Dotted path of the first non-finite float inside `value` ("" when there is none)."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{path} ({value})"
    items: Any = ()
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    for key, item in items:
        found = _non_finite_path(item, f"{path}.{key}" if path else str(key))
        if found:
            return found
    return ""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
