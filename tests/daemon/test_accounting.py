"""FrameAccount: received = processed + dropped + in flight, whatever order events come in."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from defectd.daemon.accounting import (
    DROP_REASONS,
    AccountingError,
    CameraCounts,
    FrameAccount,
    FrameEvent,
)


def test_counts_a_camera_through_receive_process_and_drop() -> None:
    account = FrameAccount()
    for seq in range(4):
        account.on_received("top", seq, time=float(seq))
    account.on_processed("top", 0)
    account.on_dropped("top", 1, "queue_full")
    account.on_dropped("top", 2, "worker_crash")

    counts = account.counts("top")
    assert counts == CameraCounts(
        received=4,
        processed=1,
        dropped={"queue_full": 1, "worker_crash": 1},
        in_flight=1,
        unmatched=0,
    )
    assert counts.balanced
    account.check()
    with pytest.raises(AccountingError, match="1 frames in flight"):
        account.check(settled=True)
    account.on_dropped("top", 3, "shutdown")
    account.check(settled=True)


def test_cameras_are_counted_apart_and_totalled() -> None:
    account = FrameAccount()
    account.on_received("top", 0)
    account.on_received("bottom", 0)
    account.on_processed("bottom", 0)
    assert account.cameras() == ("bottom", "top")
    assert account.counts("top").in_flight == 1
    assert account.counts("bottom").processed == 1
    assert account.counts("side") == CameraCounts()
    assert account.totals() == CameraCounts(received=2, processed=1, in_flight=1)


def test_a_completion_may_overtake_its_receipt() -> None:
    account = FrameAccount()
    account.on_processed("top", 7, time=1.0)  # the worker's event came first
    assert account.counts("top").unmatched == 1
    account.check(now=2.0)  # within the grace period: fine
    with pytest.raises(AccountingError, match="never received"):
        account.check(settled=True)
    account.on_received("top", 7, time=0.5)
    assert account.counts("top") == CameraCounts(received=1, processed=1)
    account.check(settled=True, now=100.0)
    assert account.anomalies == ()


def test_a_frame_completed_twice_is_caught() -> None:
    account = FrameAccount()
    account.on_received("top", 3, time=0.0)
    account.on_processed("top", 3, time=1.0)
    account.on_dropped("top", 3, "queue_full", time=1.5)
    account.check()  # could still be an early completion of a reused seq...
    with pytest.raises(AccountingError, match=r"completed but not received.*seq \[3\]"):
        account.check(now=10.0)  # ...but not 8.5 s later

    thrice = FrameAccount()
    thrice.on_processed("top", 5)
    thrice.on_processed("top", 5)
    assert thrice.anomalies == ("top seq 5 processed again",)
    with pytest.raises(AccountingError, match="recent anomalies: top seq 5 processed again"):
        thrice.check()


def test_a_camera_that_reuses_a_seq_in_flight_is_counted_twice() -> None:
    account = FrameAccount()
    account.on_received("top", 0)
    account.on_received("top", 0)  # camera restarted its numbering
    assert account.counts("top").in_flight == 2
    account.on_processed("top", 0)
    account.on_processed("top", 0)
    account.check(settled=True)


def test_overdue_lists_frames_stuck_in_flight_oldest_first() -> None:
    account = FrameAccount()
    account.on_received("top", 0, time=5.0)
    account.on_received("bottom", 0, time=1.0)
    account.on_received("top", 1, time=9.0)
    account.on_processed("bottom", 0, time=2.0)
    account.on_received("bottom", 1, time=3.0)
    assert account.overdue(now=10.0, max_age=4.0) == [("bottom", 1), ("top", 0)]
    for camera, seq in account.overdue(now=10.0, max_age=4.0):
        account.on_dropped(camera, seq, "timeout", time=10.0)
    assert account.overdue(now=10.0, max_age=4.0) == []
    assert account.counts("top").dropped == {"timeout": 1}


def test_apply_and_reason_checks() -> None:
    account = FrameAccount()
    account.apply(FrameEvent("received", "top", 0, time=1.0))
    account.apply(FrameEvent("dropped", "top", 0, reason="bad_frame"))
    assert account.counts("top").dropped == {"bad_frame": 1}
    with pytest.raises(ValueError, match="queue_full"):
        account.on_dropped("top", 1, "full")
    with pytest.raises(ValueError, match="without a reason"):
        account.apply(FrameEvent("dropped", "top", 1))
    account.check(settled=True)


# One outcome per frame; events (receipt and completion) delivered in any order.
_frames = st.lists(
    st.tuples(st.sampled_from(["top", "bottom"]), st.sampled_from(["processed", *DROP_REASONS])),
    max_size=40,
)


@given(frames=_frames, data=st.data())
def test_any_event_order_settles_balanced(
    frames: list[tuple[str, str]], data: st.DataObject
) -> None:
    events: list[FrameEvent] = []
    for seq, (camera, outcome) in enumerate(frames):
        events.append(FrameEvent("received", camera, seq))
        if outcome == "processed":
            events.append(FrameEvent("processed", camera, seq))
        else:
            events.append(FrameEvent("dropped", camera, seq, reason=outcome))
    order = data.draw(st.permutations(events))
    account = FrameAccount()
    for event in order:
        account.apply(event)
        account.check()  # the identity holds after every single event
    account.check(settled=True)
    totals = account.totals()
    assert totals.received == len(frames)
    assert totals.processed == sum(outcome == "processed" for _, outcome in frames)
    assert totals.in_flight == totals.unmatched == 0
    assert account.anomalies == ()
