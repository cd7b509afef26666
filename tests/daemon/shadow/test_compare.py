"""Live against shadow on hand-drawn masks: per frame and class, and summed per class."""

from __future__ import annotations

import pytest

from defectd.daemon.shadow.compare import ClassAgreement, Tally, compare_frame, tally
from tests.daemon.shadow.helpers import SEQS, defects, live_frame, shadow_frame


def test_compare_frame_counts_pixels_and_findings() -> None:
    # seq 12: class 1 shifted two columns (3 of 9 px shared), class 2 missed by the shadow.
    rows = compare_frame(live_frame(12), shadow_frame(12))
    assert rows == (
        ClassAgreement(1, 9, 9, 3, True, True),
        ClassAgreement(2, 8, 0, 0, True, False),
        ClassAgreement(3, 0, 0, 0, False, False),
        ClassAgreement(4, 0, 0, 0, False, False),
    )
    assert [row.disagrees for row in rows] == [True, True, False, False]
    assert compare_frame(live_frame(13), shadow_frame(13))[2] == ClassAgreement(
        3, 0, 4, 0, False, True
    )


def test_identical_frames_agree() -> None:
    rows = compare_frame(live_frame(11), live_frame(11))
    assert [(r.live_px, r.shadow_px, r.both_px) for r in rows] == [
        (9, 9, 9), (8, 8, 8), (0, 0, 0), (0, 0, 0)
    ]  # fmt: skip
    assert not any(row.disagrees for row in rows)


def test_disagrees_below_half_the_overlap() -> None:
    # Dice exactly 0.5 still agrees; just under it disagrees.
    assert not ClassAgreement(1, 4, 4, 2, True, True).disagrees
    assert ClassAgreement(1, 5, 4, 2, True, True).disagrees
    # 2×2 live, 2×2 shadow one column right: 2 of 4 shared, Dice 0.5.
    half = compare_frame(defects({1: (0, 0, 2, 2)}), defects({1: (0, 1, 2, 2)}))[0]
    assert (half.both_px, half.disagrees) == (2, False)


def test_tally_of_the_run() -> None:
    rows = [row for seq in SEQS for row in compare_frame(live_frame(seq), shadow_frame(seq))]
    sums = tally(rows)
    assert list(sums) == [1, 2, 3, 4]
    pits, scratches, inclusions, patches = sums.values()
    assert (pits.live_px, pits.shadow_px, pits.both_px, pits.found_both) == (36, 36, 30, 4)
    assert pits.dice == pytest.approx(60 / 72)
    assert pits.recall == pytest.approx(30 / 36) and pits.frame_agreement == 1.0
    assert scratches == Tally(
        frames=4, live_px=32, shadow_px=8, both_px=8, found_both=1, live_only=3, shadow_only=0
    )
    assert scratches.dice == pytest.approx(16 / 40)
    assert scratches.recall == pytest.approx(0.25) and scratches.precision == 1.0
    assert scratches.frame_agreement == pytest.approx(0.25)
    assert (inclusions.dice, inclusions.recall, inclusions.precision) == (0.0, None, 0.0)
    assert inclusions.frame_agreement == 0.0 and inclusions.shadow_only == 1
    assert patches.frames == 4
    assert (patches.dice, patches.recall, patches.precision, patches.frame_agreement) == (
        None, None, None, None
    )  # fmt: skip


def test_live_against_itself_is_perfect() -> None:
    rows = [row for seq in SEQS for row in compare_frame(live_frame(seq), live_frame(seq))]
    scratches = tally(rows)[2]
    assert (scratches.dice, scratches.recall, scratches.precision) == (1.0, 1.0, 1.0)
    assert scratches.frame_agreement == 1.0
