"""Events: built from real post-processing output, encoded, numbered, checked against the
JSON Schemas in docs/schemas, and decoded."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jsonschema  # defectd[dev]
import numpy as np
import pytest

from defectd.daemon.events import (
    DefectEvent,
    FrameCounts,
    FrameMeta,
    FrameSummary,
    MessageError,
    RateMeter,
    Region,
    StatusEvent,
    TopicSequencer,
    decode_message,
    defect_events,
    encode,
    frame_summary,
)
from defectd.engines.engine import EngineInfo
from defectd.engines.postprocess import FrameDefects, PostprocessConfig, postprocess
from defectd.engines.rle import decode

DOCS = Path(__file__).resolve().parents[2] / "docs"
CLASSES = ("pits", "crazing", "scratches", "patches")
MODEL = "defectd-default 1.0.0"
RUN = "0123456789abcdef"
CAPTURE_NS = 1_700_000_000_123_000_000
RECEIVE_NS = CAPTURE_NS + 5_000_000
ENGINE = EngineInfo("onnxruntime", "cpu", "fp32", 8, MODEL, CLASSES)


@dataclass(frozen=True)
class Frame:
    """The header fields the events use (a `FrameMeta`, like `daemon.protocol.FrameHeader`)."""

    camera_id: str = "cam0"
    seq: int = 1234
    capture_ns: int = CAPTURE_NS
    coil_id: str | None = None
    position_m: float | None = None


def defective_frame(presence: tuple[float, ...] = (0.9, 0.1, 0.95, 0.1)) -> FrameDefects:
    """Class 1: a 20×30 block at p=0.8 and a 3×3 speck at p=0.9; class 3: a 10×10 at 0.6."""
    probs = np.zeros((4, 64, 128), np.float32)
    probs[0, 10:30, 20:50] = 0.8
    probs[0, 50:53, 100:103] = 0.9
    probs[2, 40:50, 60:70] = 0.6
    return postprocess(probs, presence, PostprocessConfig())


def summary_of(
    frame: FrameMeta,
    defects: FrameDefects,
    publish_ns: int = 0,
    batch_size: int = 1,
    line: str = "line1",
) -> FrameSummary:
    return frame_summary(
        frame,
        defects,
        CLASSES,
        line=line,
        receive_ns=RECEIVE_NS,
        publish_ns=publish_ns,
        batch_size=batch_size,
    )


def clean_frame() -> FrameDefects:
    return postprocess(np.zeros((4, 64, 128), np.float32), [0.1] * 4, PostprocessConfig())


def status(ready: bool = True) -> StatusEvent:
    return StatusEvent(
        publish_ns=CAPTURE_NS,
        uptime_s=3723.5,
        fps=24.96,
        frames=FrameCounts(1000, 990, {"queue_full": 7, "bad_header": 3}, lost=2),
        queue_depth=3,
        slots_used=5,
        slots_total=32,
        engine=ENGINE if ready else None,
        ready=ready,
    )


def round_trip(event: Any, sequencer: TopicSequencer | None = None) -> dict[str, Any]:
    return decode_message(encode(event, sequencer or TopicSequencer(RUN)))


def schema(name: str) -> Any:
    """A Draft 2020-12 validator for docs/schemas/<name>.schema.json (itself checked first)."""
    document = json.loads((DOCS / "schemas" / f"{name}.schema.json").read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(document)
    return jsonschema.Draft202012Validator(document)


SCHEMA_FILES = {
    DefectEvent: "defect-event",
    FrameSummary: "frame-summary",
    StatusEvent: "status-event",
}


# -- builders -------------------------------------------------------------------------------


def test_one_defect_event_per_class_found_largest_region_first() -> None:
    frame = Frame(coil_id="C-0042", position_m=123.5)
    events = defect_events(
        frame, defective_frame(), CLASSES, include_rle=True, line="line1", model=MODEL
    )
    assert [(e.class_id, e.class_name) for e in events] == [(1, "pits"), (3, "scratches")]
    pits = events[0]
    assert pits.topic == "defect.line1.cam0.pits"
    assert (pits.seq, pits.capture_ns, pits.frame_shape) == (1234, CAPTURE_NS, (64, 128))
    assert pits.area_px == 609 and pits.region_count == 2
    assert [r.area_px for r in pits.regions] == [600, 9]
    assert pits.regions[0].bbox == (20, 10, 30, 20)
    assert pits.regions[1].max_score == pytest.approx(0.9)
    assert pits.presence == pytest.approx(0.9)
    assert (pits.coil_id, pits.position_m, pits.model) == ("C-0042", 123.5, MODEL)
    assert pits.rle is not None
    assert decode(pits.rle, (64, 128)).sum() == 609


def test_the_wire_protocol_header_is_a_frame_meta() -> None:
    protocol = pytest.importorskip("defectd.daemon.protocol")
    header = protocol.FrameHeader(
        "cam0", 1234, CAPTURE_NS, "mono8", 128, 64, coil_id="C-0042", position_m=123.5
    )
    (pits, _) = defect_events(header, defective_frame(), CLASSES, line="line1", model=MODEL)
    assert (pits.camera_id, pits.seq, pits.capture_ns) == ("cam0", 1234, CAPTURE_NS)
    assert (pits.coil_id, pits.position_m) == ("C-0042", 123.5)
    assert summary_of(header, clean_frame()).topic == "frame.line1.cam0"


def test_rle_only_when_asked() -> None:
    events = defect_events(Frame(), defective_frame(), CLASSES, line="line1", model=MODEL)
    assert all(e.rle is None for e in events)
    assert all("rle" not in e.to_payload() for e in events)


def test_region_cap_keeps_the_largest_and_the_totals() -> None:
    (pits, _) = defect_events(
        Frame(), defective_frame(), CLASSES, line="line1", model=MODEL, max_regions=1
    )
    assert [r.area_px for r in pits.regions] == [600]
    assert pits.region_count == 2 and pits.area_px == 609


def test_clean_frame_has_a_summary_and_no_defect_events() -> None:
    assert defect_events(Frame(), clean_frame(), CLASSES, line="line1", model=MODEL) == []
    summary = summary_of(Frame(), clean_frame(), publish_ns=CAPTURE_NS + 42_500_000, batch_size=8)
    assert summary.classes == () and summary.defect_count == 0
    assert summary.topic == "frame.line1.cam0"
    assert summary.latency_ms == pytest.approx(42.5)
    assert summary.daemon_latency_ms == pytest.approx(37.5)


def test_summary_lists_classes_and_counts_regions() -> None:
    summary = summary_of(Frame(), defective_frame(), publish_ns=CAPTURE_NS, batch_size=4)
    assert summary.classes == ("pits", "scratches")
    assert summary.defect_count == 3


def test_class_names_must_match_the_model() -> None:
    with pytest.raises(ValueError, match="3 class names for a model with 4 classes"):
        defect_events(Frame(), defective_frame(), CLASSES[:3], line="line1", model=MODEL)
    with pytest.raises(ValueError, match="class names"):
        frame_summary(
            Frame(),
            defective_frame(),
            CLASSES[:3],
            line="line1",
            receive_ns=RECEIVE_NS,
            publish_ns=0,
            batch_size=1,
        )


def test_ids_in_the_payload_are_the_topic_segments() -> None:
    frame = Frame(camera_id="cam0.pits\x00")
    (event, _) = defect_events(frame, defective_frame(), CLASSES, line="line 1", model=MODEL)
    assert event.topic == "defect.line_1.cam0_pits_.pits"
    assert (event.line, event.camera_id) == ("line_1", "cam0_pits_")
    summary = summary_of(frame, defective_frame(), line="line 1")
    assert summary.topic == "frame.line_1.cam0_pits_"


def test_non_finite_inputs_become_unknown() -> None:
    frame = Frame(position_m=math.nan)
    events = defect_events(
        frame, defective_frame((math.nan, 0.1, 0.9, 0.1)), CLASSES, line="line1", model=MODEL
    )
    assert events[0].presence is None and events[0].position_m is None
    payload = round_trip(events[0])
    assert payload["presence"] is None and "position_m" not in payload
    summary = summary_of(frame, clean_frame())
    assert "position_m" not in round_trip(summary)


def test_status_counts_are_a_private_copy() -> None:
    dropped = {"queue_full": 1}
    counts = FrameCounts(10, 8, dropped)
    dropped["queue_full"] = 99
    assert counts.dropped == {"queue_full": 1}
    assert counts.dropped_total == 1 and counts.in_flight == 1


def test_rate_meter() -> None:
    meter = RateMeter()
    assert meter.update(100, 0) == 0.0  # no interval yet
    assert meter.update(125, 1_000_000_000) == pytest.approx(25.0)
    assert meter.update(150, 2_000_000_000) == pytest.approx(25.0)
    assert meter.update(3, 3_000_000_000) == 0.0  # counter reset
    assert meter.update(3, 3_000_000_000) == 0.0  # no time passed


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
    return messages


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


def test_region_from_component_keeps_every_number() -> None:
    component = defective_frame().components[0]
    region = Region.from_component(component)
    assert (region.bbox, region.area_px, region.centroid) == (
        component.bbox,
        component.area,
        component.centroid,
    )
    assert (region.max_score, region.mean_score) == (component.score, component.mean_score)
