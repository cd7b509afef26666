"""Per-camera sequence tracking: gaps, duplicates, restarts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from defectd.daemon.protocol import MAX_SEQ
from defectd.daemon.sequence import OUTCOMES, SeqOutcome, SequenceStats, SequenceTracker


def kinds(tracker: SequenceTracker, camera: str, seqs: list[int]) -> list[str]:
    return [tracker.feed(camera, seq).kind for seq in seqs]


def test_first_and_in_order() -> None:
    tracker = SequenceTracker()
    assert tracker.feed("cam", 5000) == SeqOutcome("first")
    assert tracker.feed("cam", 5001) == SeqOutcome("in_order", previous=5000)
    assert tracker.stats("cam") == SequenceStats(frames=2, last_seq=5001)


def test_gap_counts_lost_frames() -> None:
    tracker = SequenceTracker()
    tracker.feed("cam", 10)
    assert tracker.feed("cam", 14) == SeqOutcome("gap", lost=3, previous=10)
    tracker.feed("cam", 15)
    tracker.feed("cam", 17)
    assert tracker.stats("cam").lost == 4


def test_duplicates_and_late_frames_are_out_of_order_not_lost() -> None:
    tracker = SequenceTracker()
    assert kinds(tracker, "cam", [5000, 5002, 5002, 5001, 5003]) == [
        "first",
        "gap",
        "out_of_order",
        "out_of_order",
        "in_order",  # the newest seq stayed 5002
    ]
    assert tracker.stats("cam") == SequenceStats(
        frames=5, lost=1, resets=0, out_of_order=2, last_seq=5003
    )


def test_restart_to_a_small_seq_is_a_reset() -> None:
    tracker = SequenceTracker()
    assert kinds(tracker, "cam", [123_456, 123_457, 0, 1, 2]) == [
        "first",
        "in_order",
        "reset",
        "in_order",
        "in_order",
    ]
    stats = tracker.stats("cam")
    assert (stats.resets, stats.lost, stats.out_of_order, stats.last_seq) == (1, 0, 0, 2)


def test_reset_below_is_configurable() -> None:
    tracker = SequenceTracker(reset_below=10)
    assert kinds(tracker, "cam", [5000, 50, 5]) == ["first", "out_of_order", "reset"]


def test_backward_jump_beyond_limit_is_a_reset() -> None:
    tracker = SequenceTracker()
    assert kinds(tracker, "cam", [2**40, 2**40 - 2**32 - 1]) == ["first", "reset"]
    assert kinds(tracker, "other", [2**40, 2**40 - 2**32]) == ["first", "out_of_order"]


def test_forward_jump_beyond_limit_is_a_reset_not_a_loss() -> None:
    tracker = SequenceTracker()
    assert kinds(tracker, "cam", [3, MAX_SEQ]) == ["first", "reset"]
    assert tracker.stats("cam").lost == 0
    kinds(tracker, "cam2", [3])
    assert tracker.feed("cam2", 3 + 2**32) == SeqOutcome("gap", lost=2**32 - 1, previous=3)
    assert tracker.feed("cam2", 4 + 2**32 + 2**32 + 1).kind == "reset"


def test_uint64_wrap_is_a_reset() -> None:
    tracker = SequenceTracker()
    assert kinds(tracker, "cam", [MAX_SEQ - 1, MAX_SEQ, 0]) == ["first", "in_order", "reset"]


def test_cameras_are_independent() -> None:
    tracker = SequenceTracker()
    kinds(tracker, "top", [5000, 5001])
    assert tracker.feed("bottom", 5005).kind == "first"
    assert tracker.feed("top", 5003).lost == 1
    assert tracker.stats("bottom").lost == 0
    assert tracker.cameras() == ("top", "bottom")
    assert tracker.stats("never") == SequenceStats()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="uint64"):
        SequenceTracker().feed("cam", -1)
    with pytest.raises(ValueError, match="reset_below"):
        SequenceTracker(reset_below=-1)
    with pytest.raises(ValueError, match="jump_limit"):
        SequenceTracker(jump_limit=0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, MAX_SEQ), max_size=50))
def test_counters_add_up(seqs: list[int]) -> None:
    tracker = SequenceTracker()
    outcomes = [tracker.feed("cam", seq) for seq in seqs]
    stats = tracker.stats("cam")
    assert all(o.kind in OUTCOMES for o in outcomes)
    assert stats.frames == len(seqs)
    assert stats.lost == sum(o.lost for o in outcomes) < len(seqs) * 2**32 + 1
    assert stats.resets == sum(o.kind == "reset" for o in outcomes)
    assert stats.out_of_order == sum(o.kind == "out_of_order" for o in outcomes)
    if seqs:
        assert stats.last_seq is not None and stats.last_seq in seqs


@settings(max_examples=200, deadline=None)
@given(st.integers(1000, 2**40), st.lists(st.booleans(), max_size=60))
def test_dropping_frames_counts_exactly_the_drops(start: int, delivered: list[bool]) -> None:
    """A camera sends start, start+1, ...; the frames that arrive tell how many did not."""
    tracker = SequenceTracker()
    tracker.feed("cam", start)
    sent = [start + 1 + i for i in range(len(delivered))]
    arrived = [seq for seq, kept in zip(sent, delivered, strict=True) if kept]
    for seq in arrived:
        tracker.feed("cam", seq)
    last_arrived = arrived[-1] if arrived else start
    assert tracker.stats("cam").lost == last_arrived - start - len(arrived)
