"""Strip defects from regions: across frame boundaries and neighbouring cameras."""

from __future__ import annotations

from defectd.daemon.coils.merge import StripMerger
from tests.daemon.coils.helpers import frame


def test_a_scratch_over_ten_frames_is_one_defect() -> None:
    merger = StripMerger(["top"])
    done = []
    for seq in range(10):
        done += merger.add(frame("top", seq, (50 + seq, 0, 4, 100)))  # a long, drifting line
    done += merger.add(frame("top", 10))  # clean: the camera moves past its end
    (defect,) = done
    assert (defect.first_seq, defect.last_seq, defect.frames) == (0, 9, 10)
    assert defect.along_m == (0.0, 1.0)
    assert defect.across_mm == (50.0, 63.0)
    assert defect.area_mm2 == 10 * 400 and defect.cameras == ("top",)
    assert defect.defect_id == "line1/C1/top/0/1/50.0.4.100"
    assert merger.open_count == 0


def test_regions_not_touching_the_edge_or_not_overlapping_stay_apart() -> None:
    merger = StripMerger(["top"])
    # frame 0: one ends above the bottom edge, one touches it; frame 1: one starts at the top
    # but elsewhere across, one starts below the top edge.
    done = merger.add(frame("top", 0, (10, 20, 5, 50), (100, 50, 5, 50)))
    assert [d.along_m for d in done] == [(0.02, 0.07)]  # the next frame cannot reach it
    done += merger.add(frame("top", 1, (150, 0, 5, 30), (100, 10, 5, 30)))
    done += merger.add(frame("top", 3)) + merger.flush()
    assert len(done) == 4 and merger.open_count == 0


def test_classes_and_cameras_overlap_rules() -> None:
    merger = StripMerger(["left", "right"])
    # left sees 0–200 mm, right 190–390 mm: a defect at 185–205 mm is in both frames.
    merger.add(frame("left", 0, (185, 30, 15, 20), (185, 30, 15, 20, 2)))
    merger.add(frame("right", 0, (0, 30, 15, 20), left_mm=190.0))
    merger.add(frame("right", 0, (100, 30, 15, 20), left_mm=190.0))  # elsewhere across
    done = merger.flush()
    joined = [d for d in done if d.cameras == ("left", "right")]
    assert len(joined) == 1 and joined[0].across_mm == (185.0, 205.0)
    assert joined[0].class_id == 1 and joined[0].frames == 1
    assert sorted(len(d.cameras) for d in done) == [1, 1, 2]  # class 2 and the far one apart


def test_a_v_shape_joins_through_the_frame_before() -> None:
    merger = StripMerger(["top"])
    merger.add(frame("top", 0, (40, 50, 40, 50)))  # touches the bottom at 40–80 mm
    # two arms at the top; neither reaches the bottom, so the defect is complete at once
    (defect,) = merger.add(frame("top", 1, (40, 0, 5, 30), (75, 0, 5, 30)))
    assert defect.frames == 2 and defect.area_mm2 == 40 * 50 + 2 * 150


def test_defects_wait_for_the_slowest_camera() -> None:
    merger = StripMerger(["left", "right"])
    assert merger.add(frame("left", 0, (10, 10, 5, 5))) == []
    assert merger.add(frame("left", 5)) == []  # right has not come past it yet
    assert merger.add(frame("right", 0, left_mm=190.0)) == []  # right at 0.0 m still
    assert len(merger.add(frame("right", 1, left_mm=190.0))) == 1
    # A camera never heard from is waited for until the others are lag_m (1 m) ahead.
    alone = StripMerger(["left", "right"])
    alone.add(frame("left", 0, (10, 10, 5, 5)))
    assert alone.add(frame("left", 10)) == []  # 1.0 m: not yet past 0.015 + 1 m
    assert len(alone.add(frame("left", 11))) == 1
