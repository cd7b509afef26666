"""Coils from frames: open, close, counts, coverage gaps, grades and bad input."""

from __future__ import annotations

from defectd.daemon.coils.grading import parse_rules
from defectd.daemon.coils.tracker import CoilTracker, TrackerOutput, TrackerSettings
from tests.daemon.coils.helpers import frame

SETTINGS = TrackerSettings(
    classes=("c1", "c2"),
    silence_s=5.0,
    rules=parse_rules(["A", "B", "reject"], [{"grade": "B", "class": "c1", "count_over": 1},
                                              {"grade": "reject", "gap_m_over": 0.25}]),
)  # fmt: skip


def run(tracker: CoilTracker, frames: list) -> TrackerOutput:  # type: ignore[type-arg]
    out = TrackerOutput()
    for item in frames:
        out += tracker.add(item)
    return out


def test_a_coil_closes_on_the_next_coil_with_its_counts_and_grade() -> None:
    tracker = CoilTracker("line1", ["top"], SETTINGS)
    frames = [frame("top", seq, *([(10, 10, 5, 5)] if seq in (2, 5) else [])) for seq in range(10)]
    frames[7] = frame("top", 7, (20, 0, 5, 100))  # a scratch into frame 8
    frames[8] = frame("top", 8, (20, 0, 5, 50))
    out = run(tracker, frames)
    assert out.coils == () and tracker.current == "C1"
    out += tracker.add(frame("top", 10, coil="C2"))
    (coil,) = out.coils
    assert (coil.coil_id, coil.end_reason, coil.frames, coil.defects) == ("C1", "next_coil", 10, 3)
    assert coil.head_m == 0.0 and abs(coil.tail_m - 1.0) < 1e-9
    assert abs(coil.inspected_m - 1.0) < 1e-9 and coil.width_mm == 200.0 and coil.gap_m == 0.0
    c1 = coil.classes[0]
    assert (c1.class_name, c1.count) == ("c1", 3) and abs(c1.per_100m - 300.0) < 1e-6
    assert abs(c1.per_m2 - 3 / 0.2) < 1e-6 and coil.classes[1].count == 0
    assert coil.grade == "B" and coil.grade_reasons == ("c1 count 3 > 1 → B",)
    assert coil.largest[0].endswith("/top/7/1/20.0.5.100")  # the scratch: 750 mm²
    assert len([d for d in out.defects if d.coil_id == "C1"]) == 3
    assert tracker.current == "C2"


def test_lost_frames_are_coverage_gaps_and_grade_the_coil() -> None:
    tracker = CoilTracker("line1", ["top"], SETTINGS)
    out = run(tracker, [frame("top", s) for s in (0, 1, 2, 6, 7)])  # 3, 4, 5 lost
    (gap,) = out.gaps
    assert (gap.camera, gap.frames, gap.reason) == ("top", 3, "missing")
    assert abs(gap.from_m - 0.3) < 1e-9 and abs(gap.to_m - 0.6) < 1e-9
    out = tracker.end_coil()
    (coil,) = out.coils
    assert coil.end_reason == "explicit" and abs(coil.gap_m - 0.3) < 1e-9
    assert abs(coil.inspected_m - 0.5) < 1e-9
    assert coil.grade == "reject" and "strip gap_m 0.3 > 0.25 → reject" in coil.grade_reasons


def test_silence_null_coil_and_shutdown_close_a_coil() -> None:
    tracker = CoilTracker("line1", ["top"], SETTINGS)
    tracker.add(frame("top", 0), now_ns=10**9)
    assert tracker.tick(5 * 10**9).coils == ()
    assert tracker.tick(7 * 10**9).coils[0].end_reason == "silence"
    tracker.add(frame("top", 1, coil="C2"))
    out = tracker.add(frame("top", 2, (1, 1, 2, 2), coil=None))
    assert out.coils[0].end_reason == "explicit" and tracker.current is None
    assert [d.coil_id for d in out.defects] == [None]  # a frame without a coil keeps its own
    tracker.add(frame("top", 3, coil="C3"))
    out = tracker.close()
    assert out.coils[0].end_reason == "shutdown"


def test_bad_input_is_counted_never_fatal() -> None:
    tracker = CoilTracker("line1", ["top"], SETTINGS)
    run(tracker, [frame("top", 0), frame("top", 1), frame("top", 2, coil="C2")])
    out = tracker.add(frame("top", 3, (5, 5, 5, 5), coil="C1"))  # C1 closed: it came back
    # Its defects are kept under their own coil id; C1's closed report is not reopened.
    assert out.defects and out.defects[0].coil_id == "C1" and tracker.current == "C2"
    tracker.add(frame("top", 2, coil="C2"))  # seq back
    tracker.add(frame("top", 9, coil="C2", top_m=0.05))  # position back
    unplaced = frame("top", 10, coil="C2")
    tracker.add(type(unplaced)(**{**unplaced.__dict__, "top_m": None}))  # no position
    (coil,) = tracker.close().coils
    assert dict(coil.anomalies) == {"no_position": 1, "position_back": 1, "seq_back": 1}
    assert tracker.anomalies["coil_back"] == 1
