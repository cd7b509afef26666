"""The wire codec: events encoded, numbered, checked against the JSON Schemas in
docs/schemas, and decoded."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema  # defectd[dev]
import pytest

from defectd.daemon.coils.model import ClassCount, CoilRecord
from defectd.daemon.events import (
    CoilEvent,
    DefectEvent,
    FrameCounts,
    FrameSummary,
    MessageError,
    StatusEvent,
    TopicSequencer,
    decode_message,
    defect_events,
    encode,
)
from tests.daemon.events.helpers import (
    CAPTURE_NS,
    CLASSES,
    MODEL,
    RUN,
    Frame,
    clean_frame,
    defective_frame,
    round_trip,
    status,
    summary_of,
)

DOCS = Path(__file__).resolve().parents[3] / "docs"


def schema(name: str) -> Any:
    """A Draft 2020-12 validator for docs/schemas/<name>.schema.json (itself checked first)."""
    document = json.loads((DOCS / "schemas" / f"{name}.schema.json").read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(document)
    return jsonschema.Draft202012Validator(document)


SCHEMA_FILES = {
    DefectEvent: "defect-event",
    FrameSummary: "frame-summary",
    StatusEvent: "status-event",
    CoilEvent: "coil-event",
}


# -- encoding -------------------------------------------------------------------------------


def test_encode_gives_topic_and_compact_json_with_schema_first() -> None:
    (pits, _) = defect_events(
        Frame(coil_id="Coil-ß"), defective_frame(), CLASSES, line="line1", model=MODEL
    )
    topic, body = encode(pits, TopicSequencer(RUN))
    assert topic == b"defect.line1.cam0.pits"
    assert b'": ' not in body and b", " not in body
    assert "Coil-ß".encode() in body  # UTF-8, not \u escapes
    payload = json.loads(body)
    assert list(payload)[:3] == ["schema", "topic_seq", "run_id"]
    assert payload["schema"] == "defectd.defect/1"
    assert (payload["topic_seq"], payload["run_id"]) == (0, RUN)
    assert payload["regions"][0] == {
        "bbox": [20, 10, 30, 20],
        "area_px": 600,
        "mean_score": 0.8,
        "max_score": 0.8,
        "centroid": [34.5, 19.5],
    }


def test_topic_seq_counts_each_exact_topic_separately() -> None:
    sequencer = TopicSequencer(RUN)
    numbers: dict[str, list[int]] = {}
    for seq in range(3):
        for event in defect_events(
            Frame(seq=seq), defective_frame(), CLASSES, line="line1", model=MODEL
        ):
            payload = round_trip(event, sequencer)
            numbers.setdefault(event.topic, []).append(payload["topic_seq"])
    assert numbers == {
        "defect.line1.cam0.pits": [0, 1, 2],
        "defect.line1.cam0.scratches": [0, 1, 2],
    }
    assert round_trip(status(), sequencer)["topic_seq"] == 0


def test_run_ids_are_random_and_checked() -> None:
    assert TopicSequencer().run_id != TopicSequencer().run_id
    assert re.fullmatch(r"[0-9a-f]{16}", TopicSequencer().run_id)
    with pytest.raises(ValueError, match="16 lowercase hex"):
        TopicSequencer("restart-1")


def test_non_finite_float_is_rejected_naming_the_field_and_shows_as_a_gap() -> None:
    (pits, _) = defect_events(Frame(), defective_frame(), CLASSES, line="line1", model=MODEL)
    bad = replace(pits, regions=(replace(pits.regions[0], max_score=math.inf), *pits.regions[1:]))
    sequencer = TopicSequencer(RUN)
    with pytest.raises(ValueError, match=r"regions\.0\.max_score \(inf\) is not a finite number"):
        encode(bad, sequencer)
    assert round_trip(pits, sequencer)["topic_seq"] == 1  # 0 went to the unsendable message


@pytest.mark.parametrize(
    ("parts", "problem"),
    [
        ([b"status"], "2-part"),
        ([b"status", b"{not json"], "unreadable"),
        ([b"status", b"\xff"], "unreadable"),
        ([b"status", b'{"schema":"defectd.status/1","topic_seq":0,"fps":NaN}'], "NaN"),
        ([b"status", b"[]"], "not a JSON object"),
        ([b"status", b'{"topic_seq":0}'], "schema None"),
        ([b"status", b'{"schema":"defectd.alarm/1","topic_seq":0}'], "expected one of"),
        ([b"status", b'{"schema":"defectd.status/2","topic_seq":0}'], "reads version 1"),
        ([b"frame.l.c", b'{"schema":"defectd.status/1","topic_seq":0}'], "disagree"),
        ([b"status", b'{"schema":"defectd.status/1","topic_seq":-1}'], "topic_seq"),
        ([b"status", b'{"schema":"defectd.status/1","topic_seq":true}'], "topic_seq"),
    ],
)
def test_decode_rejects_what_it_does_not_understand(parts: list[bytes], problem: str) -> None:
    with pytest.raises(MessageError, match=re.escape(problem)):
        decode_message(parts)


# -- schemas --------------------------------------------------------------------------------


def every_kind_of_message() -> list[Any]:
    """Events from real post-processing output, with and without every optional field."""
    frame = Frame(coil_id="C-0042", position_m=123.5)
    messages: list[Any] = []
    for meta in (Frame(), frame):
        for defects in (defective_frame(), clean_frame()):
            messages += defect_events(
                meta, defects, CLASSES, include_rle=True, line="line1", model=MODEL
            )
            messages.append(summary_of(meta, defects, publish_ns=CAPTURE_NS + 9, batch_size=2))
    nan_presence = defective_frame((math.nan, 0.1, 0.9, 0.1))
    messages += defect_events(
        Frame(), nan_presence, CLASSES, line="line1", model=MODEL, max_regions=0
    )
    messages += [status(ready=True), status(ready=False), replace(status(), frames=FrameCounts())]
    bare = replace(coil_record(), anomalies=(), grade_reasons=(), largest=())
    messages += [CoilEvent(coil_record()), CoilEvent(bare)]
    return messages


def coil_record() -> CoilRecord:
    return CoilRecord(
        line="line1", coil_id="C24-08151", started_ns=CAPTURE_NS, ended_ns=CAPTURE_NS + 10**11,
        end_reason="next_coil", head_m=0.0, tail_m=812.4, inspected_m=810.1, width_mm=1520.0,
        frames=8124, defects=3,
        classes=(ClassCount("scratches", 2, 40.5, 0.25, 0.0016), ClassCount("holes", 1, 3.0,
                 0.12, 0.0008)),
        gap_m=2.3, largest=("line1/C24-08151/top-0/17/3/1.2.3.4",), grade="B",
        grade_reasons=("scratches count 2 > 1 → B",), anomalies=(("seq_back", 1),),
    )  # fmt: skip


def test_schemas_accept_every_message_the_builders_make() -> None:
    validators = {kind: schema(name) for kind, name in SCHEMA_FILES.items()}
    messages = every_kind_of_message()
    assert {type(m) for m in messages} == set(SCHEMA_FILES)
    sequencer = TopicSequencer(RUN)
    for message in messages:
        validators[type(message)].validate(round_trip(message, sequencer))


@pytest.mark.parametrize("kind", list(SCHEMA_FILES))
def test_schemas_refuse_unknown_and_missing_fields(kind: type) -> None:
    validator = schema(SCHEMA_FILES[kind])
    payload = round_trip(next(m for m in every_kind_of_message() if type(m) is kind))
    assert validator.is_valid(payload)
    assert not validator.is_valid({**payload, "surprise": 1})
    for required in ("schema", "topic_seq", "run_id"):
        assert not validator.is_valid({k: v for k, v in payload.items() if k != required})
    assert not validator.is_valid({**payload, "schema": "defectd.other/1"})


def test_schema_refuses_a_region_with_a_probability_above_one() -> None:
    (pits, _) = defect_events(Frame(), defective_frame(), CLASSES, line="line1", model=MODEL)
    payload = round_trip(pits)
    payload["regions"][0]["max_score"] = 1.5
    assert not schema("defect-event").is_valid(payload)


def test_events_md_documents_every_schema_field() -> None:
    text = (DOCS / "events.md").read_text("utf-8")
    missing = []
    for name in SCHEMA_FILES.values():
        document = json.loads((DOCS / "schemas" / f"{name}.schema.json").read_text("utf-8"))
        for field_name in _property_names(document):
            if f"`{field_name}`" not in text:
                missing.append(f"{name}: {field_name}")
    assert not missing, f"docs/events.md does not describe {missing}"


def test_the_example_in_events_md_is_valid() -> None:
    text = (DOCS / "events.md").read_text("utf-8")
    (example,) = re.findall(r"```json\n(.*?)```", text, re.DOTALL)
    payload = decode_message([b"defect.line1.cam0.scratches", example.encode()])
    schema("defect-event").validate(payload)


def _property_names(node: Any) -> set[str]:
    names: set[str] = set()
    if isinstance(node, dict):
        names |= set(node.get("properties", {}))
        for value in node.values():
            names |= _property_names(value)
    elif isinstance(node, list):
        for value in node:
            names |= _property_names(value)
    return names
