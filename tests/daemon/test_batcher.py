"""Batcher: full batches at once, partial ones on the deadline, per-camera order kept."""

from __future__ import annotations

import queue
from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from defectd.daemon.batcher import Batcher


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_full_batch_goes_at_once() -> None:
    clock = FakeClock()
    batcher: Batcher[int] = Batcher(max_batch=4, max_wait_ms=10, clock=clock)
    for item in range(3):
        batcher.add(item)
    assert batcher.poll() is None
    batcher.add(3)
    assert batcher.next_deadline() == float("-inf")
    assert batcher.poll() == [0, 1, 2, 3]
    assert batcher.poll() is None
    assert batcher.next_deadline() is None


def test_partial_batch_goes_when_the_oldest_has_waited_max_wait() -> None:
    clock = FakeClock()
    batcher: Batcher[str] = Batcher(max_batch=8, max_wait_ms=10, clock=clock)
    batcher.add("a")
    clock.now = 0.004
    batcher.add("b")
    assert batcher.next_deadline() == pytest.approx(0.010)
    assert batcher.poll(0.0099) is None
    clock.now = 0.010
    assert batcher.poll() == ["a", "b"]
    assert len(batcher) == 0


def test_leftover_after_a_full_batch_keeps_its_own_deadline() -> None:
    clock = FakeClock()
    batcher: Batcher[int] = Batcher(max_batch=2, max_wait_ms=10, clock=clock)
    for item in range(5):
        clock.now = item * 0.001
        batcher.add(item)
    assert batcher.poll() == [0, 1]
    assert batcher.poll() == [2, 3]
    assert batcher.poll() is None
    assert batcher.next_deadline() == pytest.approx(0.014)  # item 4 arrived at 4 ms
    assert batcher.poll(0.014) == [4]


def test_zero_wait_sends_whatever_is_pending() -> None:
    batcher: Batcher[int] = Batcher(max_batch=4, max_wait_ms=0, clock=FakeClock())
    batcher.add(1)
    assert batcher.poll() == [1]


def test_batches_mix_cameras_and_keep_each_cameras_order() -> None:
    clock = FakeClock()
    batcher: Batcher[tuple[str, int]] = Batcher(max_batch=3, max_wait_ms=5, clock=clock)
    arrivals = [("top", 0), ("bottom", 0), ("top", 1), ("bottom", 1), ("top", 2)]
    for item in arrivals:
        batcher.add(item)
    first = batcher.poll()
    assert first == [("top", 0), ("bottom", 0), ("top", 1)]
    assert batcher.flush() == [[("bottom", 1), ("top", 2)]]


def test_flush_splits_into_max_batch_chunks() -> None:
    batcher: Batcher[int] = Batcher(max_batch=2, max_wait_ms=100, clock=FakeClock())
    for item in range(5):
        batcher.add(item)
    assert batcher.flush() == [[0, 1], [2, 3], [4]]
    assert batcher.flush() == []


@pytest.mark.parametrize(("max_batch", "max_wait_ms"), [(0, 1.0), (1, -1.0)])
def test_rejects_bad_settings(max_batch: int, max_wait_ms: float) -> None:
    with pytest.raises(ValueError, match="max_"):
        Batcher(max_batch=max_batch, max_wait_ms=max_wait_ms)


# Operations: ("add", camera, dt) or ("poll", dt); time only moves forward.
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from("abc"), st.floats(0, 0.02)),
        st.tuples(st.just("poll"), st.just(""), st.floats(0, 0.02)),
    ),
    max_size=60,
)


@given(ops=_ops, max_batch=st.integers(1, 5), max_wait_ms=st.sampled_from([0.0, 1.0, 10.0]))
def test_every_item_comes_out_once_in_per_camera_order(
    ops: list[tuple[str, str, float]], max_batch: int, max_wait_ms: float
) -> None:
    clock = FakeClock()
    batcher: Batcher[tuple[str, int]] = Batcher(max_batch, max_wait_ms, clock=clock)
    next_seq: dict[str, int] = defaultdict(int)
    arrival: dict[tuple[str, int], float] = {}
    out: list[tuple[str, int]] = []
    for kind, camera, dt in ops:
        clock.now += dt
        if kind == "add":
            item = (camera, next_seq[camera])
            next_seq[camera] += 1
            arrival[item] = clock.now
            batcher.add(item)
            continue
        while (batch := batcher.poll()) is not None:
            assert 1 <= len(batch) <= max_batch
            if len(batch) < max_batch:  # partial: only once its oldest has waited long enough
                assert clock.now >= arrival[batch[0]] + max_wait_ms / 1000 - 1e-12
            out.extend(batch)
        # Nothing due is left behind: not a full batch, and the oldest is not yet late.
        assert len(batcher) < max_batch
        deadline = batcher.next_deadline()
        assert deadline is None or deadline > clock.now
    for batch in batcher.flush():
        assert 1 <= len(batch) <= max_batch
        out.extend(batch)

    assert sorted(out) == sorted(arrival)  # each exactly once
    for camera, count in next_seq.items():
        assert [seq for cam, seq in out if cam == camera] == list(range(count))


class ScriptedQueue:
    """A queue whose `get` follows a script and advances a fake clock on timeouts."""

    def __init__(self, clock: FakeClock, script: list[object]) -> None:
        self.clock = clock
        self.script = script
        self.timeouts: list[float | None] = []

    def get(self, block: bool = True, timeout: float | None = None) -> str | None:
        if block:
            self.timeouts.append(timeout)
        step = self.script.pop(0)
        if step is queue.Empty:
            if block and timeout is not None:
                self.clock.now += timeout
            raise queue.Empty
        assert isinstance(step, str) or step is None
        return step


def test_max_wait_changes_for_items_pending_too() -> None:
    clock = FakeClock()
    batcher: Batcher[int] = Batcher(4, 100.0, clock=clock)
    batcher.add(1)
    clock.now += 0.05
    assert batcher.poll() is None
    batcher.max_wait_ms = 20.0  # a reload
    assert batcher.max_wait_ms == 20.0 and batcher.poll() == [1]
    with pytest.raises(ValueError, match="0 or more"):
        batcher.max_wait_ms = -1


def test_hand_over_keeps_arrival_times_and_leaves_nothing() -> None:
    clock = FakeClock()
    batcher: Batcher[int] = Batcher(4, 100.0, clock=clock)
    batcher.add(1)
    clock.now += 0.01
    batcher.add(2)
    arrived = batcher.hand_over()
    assert [item for _, item in arrived] == [1, 2]
    assert arrived[1][0] - arrived[0][0] == pytest.approx(0.01)
    assert len(batcher) == 0 and batcher.poll() is None
