"""Event types and builders: events made from real post-processing output carry the right
classes, regions, ids and counts."""

from __future__ import annotations

import math

import pytest

from defectd.daemon.events import FrameCounts, RateMeter, Region, defect_events, frame_summary
from defectd.engines.rle import decode
from tests.daemon.events.helpers import (
    CAPTURE_NS,
    CLASSES,
    MODEL,
    RECEIVE_NS,
    Frame,
    clean_frame,
    defective_frame,
    round_trip,
    summary_of,
)

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


def test_region_from_component_keeps_every_number() -> None:
    component = defective_frame().components[0]
    region = Region.from_component(component)
    assert (region.bbox, region.area_px, region.centroid) == (
        component.bbox,
        component.area,
        component.centroid,
    )
    assert (region.max_score, region.mean_score) == (component.score, component.mean_score)
