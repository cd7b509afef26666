"""SlotPool: real shared memory across real (spawned) processes, policies, crash reclaim, leaks.

The daemon starts its children with the ``spawn`` method, and so do these tests: child entry
points are module-level functions here, imported by the child.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import secrets
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from defectd.daemon.accounting import FrameAccount
from defectd.daemon.batcher import Batcher
from defectd.daemon.slots import (
    SHM_DIR,
    Acquired,
    FrameMeta,
    SlotGroup,
    SlotPool,
    SlotPoolError,
    SlotPoolSpec,
    SlotRef,
    SlotState,
)

REPO = Path(__file__).resolve().parents[2]
CTX = multiprocessing.get_context("spawn")
H, W = 24, 40
JOIN_S = 60  # spawn imports numpy in each child; the test machine may be busy


def leftovers(prefix: str) -> list[str]:
    return sorted(name for name in os.listdir(SHM_DIR) if name.startswith(prefix))


@pytest.fixture
def prefix() -> Iterator[str]:
    """A unique segment prefix; fails the test if a segment with it is left in /dev/shm."""
    name = f"dftest{secrets.token_hex(3)}"
    yield name
    assert leftovers(name) == []


def meta(seq: int, camera: str = "top") -> FrameMeta:
    return FrameMeta(camera, seq, received=float(seq))


def pixels(camera: int, seq: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """A frame no other (camera, seq) shares in its first pixel, uniform elsewhere."""
    frame = np.full((H, W), (seq * 7 + camera * 101) % 256, np.uint8)
    frame[0, 0] = camera
    return frame


def fill(pool: SlotPool, frame_meta: FrameMeta, camera: int = 0) -> SlotRef:
    acquired = pool.acquire(frame_meta, block=False)
    assert acquired.ref is not None
    pool.frame(acquired.ref.slot)[:] = pixels(camera, frame_meta.seq)
    assert pool.commit(acquired.ref)
    return acquired.ref


# -- child process entry points (spawn imports this module) ------------------------------


def child_fill(spec: SlotPoolSpec, seq: int, out: multiprocessing.Queue[SlotRef]) -> None:
    with SlotPool.attach(spec) as pool:
        out.put(fill(pool, meta(seq), camera=3))


def child_hold(spec: SlotPoolSpec, out: multiprocessing.Queue[SlotRef], ready: Event) -> None:
    """Take one READY and one FILLING slot, then wait to be killed."""
    pool = SlotPool.attach(spec)
    out.put(fill(pool, meta(10)))
    assert pool.acquire(meta(11), block=False).ref is not None
    ready.set()
    time.sleep(600)


def child_hold_lock(spec: SlotPoolSpec, ready: Event) -> None:
    pool = SlotPool.attach(spec)
    with pool._locked():
        ready.set()
        time.sleep(600)


def child_wait_for_slot(
    spec: SlotPoolSpec, waiting: Event, out: multiprocessing.Queue[tuple[bool, float]]
) -> None:
    with SlotPool.attach(spec) as pool:
        waiting.set()
        start = time.monotonic()
        acquired = pool.acquire(meta(1), block=True, timeout=30)
        out.put((acquired.ref is not None, time.monotonic() - start))
        if acquired.ref is not None:
            pool.release(acquired.ref)


def consume(
    refs: multiprocessing.Queue[SlotRef | None],
    batcher: Batcher[SlotRef],
    infer: Callable[[list[SlotRef]], None],
) -> None:
    """Batch refs from the queue as the inference stage does, until None; then flush."""
    while True:
        deadline = batcher.next_deadline()
        timeout = None if deadline is None else max(0.0, deadline - batcher.clock())
        try:
            item = refs.get(timeout=timeout)
        except queue.Empty:
            item = batcher  # nothing new: only the deadline passed
        if item is None:
            for rest in batcher.flush():
                infer(rest)
            return
        if isinstance(item, SlotRef):
            batcher.add(item)
        while (batch := batcher.poll()) is not None:
            infer(batch)


def child_receiver(
    spec: SlotPoolSpec,
    camera: int,
    count: int,
    refs: multiprocessing.Queue[SlotRef | None],
    events: multiprocessing.Queue[tuple[str, str, int, str]],
) -> None:
    """A receiver: every frame counted received, then filled, or dropped for queue_full."""
    name = f"cam{camera}"
    with SlotPool.attach(spec) as pool:
        for seq in range(count):
            events.put(("received", name, seq, ""))
            acquired = pool.acquire(meta(seq, name), block=False)
            if acquired.dropped is not None:
                events.put(("dropped", acquired.dropped.camera, acquired.dropped.seq, "queue_full"))
            if acquired.ref is None:
                events.put(("dropped", name, seq, "queue_full"))
                continue
            pool.frame(acquired.ref.slot)[:] = pixels(camera, seq)
            pool.commit(acquired.ref)
            refs.put(acquired.ref)
            time.sleep(0.002)  # ~500 frames/s per camera


def join(process: multiprocessing.process.BaseProcess) -> None:
    process.join(JOIN_S)
    assert not process.is_alive(), f"{process.name} did not finish in {JOIN_S} s"


# -- one process ---------------------------------------------------------------------------


def test_attach_sees_the_creators_pixels_and_states(prefix: str) -> None:
    with SlotPool.create(prefix, count=3, height=H, width=W) as pool:
        assert leftovers(prefix) == [pool.name]
        with SlotPool.attach(pool.spec) as other:
            ref = fill(pool, meta(5))
            assert other.state(ref.slot) is SlotState.READY
            np.testing.assert_array_equal(other.frame(ref.slot), pixels(0, 5))
            assert other.in_use() == 1
            assert other.usage()[SlotState.READY] == 1
    with pytest.raises(SlotPoolError, match="does not exist"):
        SlotPool.attach(pool.spec)


def test_attach_refuses_a_spec_that_does_not_match(prefix: str) -> None:
    with SlotPool.create(prefix, count=2, height=H, width=W) as pool:
        spec = pool.spec
        wrong = SlotPoolSpec(spec.name, (SlotGroup(1, H, W), SlotGroup(1, H, W)))
        with pytest.raises(SlotPoolError, match=f"in 1 group.*asks for 1 slots of {H}×{W}"):
            SlotPool.attach(wrong)
        with pytest.raises(SlotPoolError, match="bytes, spec"):
            SlotPool.attach(SlotPoolSpec(spec.name, (SlotGroup(100, H, W),)))


def test_create_checks_its_arguments(prefix: str) -> None:
    with pytest.raises(ValueError, match="drop_oldest"):
        SlotPool.create(prefix, 2, H, W, policy="drop_newest")
    with pytest.raises(ValueError, match="≥ 1"):
        SlotPool.create(prefix, 0, H, W)
    with SlotPool.create(prefix, 1, H, W) as pool, pytest.raises(ValueError, match="32"):
        pool.acquire(meta(0, camera="x" * 33))


def test_life_cycle_and_stale_refs(prefix: str) -> None:
    with SlotPool.create(prefix, count=2, height=H, width=W) as pool:
        ref = fill(pool, meta(0))
        assert pool.claim([ref, ref]) == [ref]  # queued twice, claimed once
        assert pool.state(ref.slot) is SlotState.BATCHED
        assert pool.advance(ref, SlotState.INFERRED)
        assert not pool.advance(ref, SlotState.INFERRED)  # not from INFERRED
        assert pool.advance(ref, SlotState.DONE)
        assert pool.release(ref)
        assert not pool.release(ref)  # exactly once
        again = pool.acquire(meta(1), block=False).ref
        assert again is not None and again.slot == ref.slot and again.gen == ref.gen + 1
        assert not pool.commit(ref)  # the old frame's ref does not touch the new frame
        with pytest.raises(ValueError, match="BATCHED, INFERRED or DONE"):
            pool.advance(again, SlotState.READY)


def test_the_largest_camera_seq_fits(prefix: str) -> None:
    """The protocol's seq is a uint64: 2**64 - 1 must go through a slot unchanged."""
    with SlotPool.create(prefix, count=1, height=H, width=W) as pool:
        ref = fill(pool, meta(2**64 - 1))
        (claimed,) = pool.claim([ref])
        assert claimed.meta.seq == 2**64 - 1
        assert pool.release(claimed)


def test_drop_oldest_takes_the_oldest_ready_frame(prefix: str) -> None:
    with SlotPool.create(prefix, count=3, height=H, width=W, policy="drop_oldest") as pool:
        refs = [fill(pool, meta(seq, camera)) for seq, camera in [(0, "b"), (0, "a"), (1, "a")]]
        acquired = pool.acquire(meta(9), block=False)
        assert acquired.dropped == meta(0, "b")  # oldest commit, whichever camera
        assert acquired.ref is not None and acquired.ref.slot == refs[0].slot
        # The batcher still holds refs[0]: claim leaves it out, the others go on.
        assert pool.claim(refs) == refs[1:]
        assert not pool.release(refs[0])
        # Nothing READY: BATCHED and FILLING slots are never taken.
        assert pool.acquire(meta(10), block=False) == Acquired(None)
        assert pool.acquire(meta(10), block=True, timeout=0.05).ref is None
        assert pool.in_use() == 3


def test_groups_hold_each_cameras_frames_at_its_size(prefix: str) -> None:
    wide, small = SlotGroup(2, 8, 64, ("wide",)), SlotGroup(3, H, W, ("left", "right"))
    with SlotPool.create_groups(prefix, (wide, small)) as pool:
        assert (
            pool.spec.count == 5 and pool.spec.describe() == f"2 slots of 8×64, 3 slots of {H}×{W}"
        )
        first = pool.acquire(FrameMeta("wide", 0, 0.0), block=False).ref
        assert first is not None and first.slot in (0, 1)
        assert pool.frame(first.slot).shape == (8, 64)
        pool.frame(first.slot)[:] = 200
        pool.commit(first)
        refs = [fill(pool, meta(seq, camera)) for seq, camera in [(1, "left"), (2, "right")]]
        assert {ref.slot for ref in refs} <= {2, 3, 4}
        assert all(pool.frame(ref.slot).shape == (H, W) for ref in refs)
        # The wide frame's pixels are not touched by the small group's writes.
        assert (pool.frame(first.slot) == 200).all()
        with SlotPool.attach(pool.spec) as other:
            assert other.frame(first.slot).shape == (8, 64)
            np.testing.assert_array_equal(other.frame(refs[0].slot), pixels(0, 1))
        # drop_oldest stays in the camera's group: the full wide group drops its own oldest
        # frame (seq 0 is older than every small frame), never a small camera's.
        second = pool.acquire(FrameMeta("wide", 3, 3.0), block=False).ref
        assert second is not None
        pool.commit(second)
        third = pool.acquire(FrameMeta("wide", 4, 4.0), block=False)
        assert third.dropped == FrameMeta("wide", 0, 0.0)
        fill(pool, meta(5, "left"))
        last = pool.acquire(meta(6, "right"), block=False)
        assert last.dropped == meta(1, "left")  # the small group's oldest
        with pytest.raises(ValueError, match="'other' has no slot group"):
            pool.acquire(FrameMeta("other", 0, 0.0), block=False)
    with pytest.raises(ValueError, match="at least one slot group"):
        SlotPool.create_groups(prefix, ())


def test_block_never_drops_and_waits_for_a_release(prefix: str) -> None:
    with SlotPool.create(prefix, count=1, height=H, width=W, policy="block") as pool:
        ref = fill(pool, meta(0))
        start = time.monotonic()
        assert pool.acquire(meta(1), block=True, timeout=0.1).ref is None
        assert time.monotonic() - start >= 0.1
        assert pool.acquire(meta(1), block=False).ref is None
        threading.Timer(0.1, pool.release, args=(ref,)).start()
        acquired = pool.acquire(meta(1), block=True, timeout=10)
        assert acquired.ref is not None and acquired.dropped is None


def test_close_with_a_frame_view_still_alive_unlinks_anyway(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    pool = SlotPool.create(prefix, count=1, height=H, width=W)
    view = pool.frame(0)
    pool.close()
    pool.unlink()
    pool.unlink()  # twice is fine
    assert "frame views still in use" in caplog.text
    del view
    with pytest.raises(SlotPoolError, match="closed"):
        pool.in_use()


# -- across processes ------------------------------------------------------------------------


def test_child_fills_a_slot_parent_reads_the_same_pixels(prefix: str) -> None:
    with SlotPool.create(prefix, count=2, height=H, width=W) as pool:
        out: multiprocessing.Queue[SlotRef] = CTX.Queue()
        child = CTX.Process(target=child_fill, args=(pool.spec, 42, out))
        child.start()
        ref = out.get(timeout=JOIN_S)
        join(child)
        assert child.exitcode == 0
        assert leftovers(prefix) == [pool.name]  # the child's exit did not unlink it
        assert pool.claim([ref]) == [ref]
        np.testing.assert_array_equal(pool.frame(ref.slot), pixels(3, 42))
        assert pool.release(ref)


def test_block_policy_across_processes(prefix: str) -> None:
    with SlotPool.create(prefix, count=1, height=H, width=W, policy="block") as pool:
        ref = fill(pool, meta(0))
        waiting = CTX.Event()
        out: multiprocessing.Queue[tuple[bool, float]] = CTX.Queue()
        child = CTX.Process(target=child_wait_for_slot, args=(pool.spec, waiting, out))
        child.start()
        assert waiting.wait(JOIN_S)
        time.sleep(0.3)
        assert pool.state(ref.slot) is SlotState.READY  # blocked, not dropped
        pool.release(ref)
        got, waited = out.get(timeout=JOIN_S)
        join(child)
        assert got and waited >= 0.25


def test_reclaim_after_sigkill_frees_the_dead_childs_slots(prefix: str) -> None:
    with SlotPool.create(prefix, count=3, height=H, width=W) as pool:
        out: multiprocessing.Queue[SlotRef] = CTX.Queue()
        ready = CTX.Event()
        child = CTX.Process(target=child_hold, args=(pool.spec, out, ready))
        child.start()
        assert ready.wait(JOIN_S)
        queued = out.get(timeout=JOIN_S)
        assert pool.in_use() == 2
        os.kill(child.pid or 0, signal.SIGKILL)
        join(child)
        assert child.exitcode == -signal.SIGKILL

        assert pool.reclaim(child.pid or 0) == [meta(10), meta(11)]
        assert pool.in_use() == 0
        assert pool.claim([queued]) == []  # its queued ref is refused: counted once
        assert pool.reclaim(child.pid or 0) == []


def test_a_child_killed_holding_the_lock_does_not_lock_the_pool(prefix: str) -> None:
    with SlotPool.create(prefix, count=1, height=H, width=W) as pool:
        ready = CTX.Event()
        child = CTX.Process(target=child_hold_lock, args=(pool.spec, ready))
        child.start()
        assert ready.wait(JOIN_S)
        os.kill(child.pid or 0, signal.SIGKILL)
        join(child)
        result: list[int] = []
        probe = threading.Thread(target=lambda: result.append(pool.in_use()), daemon=True)
        probe.start()
        probe.join(5)
        assert result == [0], "pool still locked after its holder died"


@pytest.mark.slow
def test_two_receivers_and_a_slow_batcher_account_for_every_frame(prefix: str) -> None:
    """drop_oldest under load: pixels stay intact and received = processed + dropped."""
    count = 300
    with SlotPool.create(prefix, count=12, height=H, width=W) as pool:
        refs: multiprocessing.Queue[SlotRef | None] = CTX.Queue()
        events: multiprocessing.Queue[tuple[str, str, int, str]] = CTX.Queue()
        receivers = [
            CTX.Process(target=child_receiver, args=(pool.spec, camera, count, refs, events))
            for camera in (1, 2)
        ]
        processed: list[tuple[str, int]] = []
        batch_sizes: list[int] = []

        def infer(batch: list[SlotRef]) -> None:
            claimed = pool.claim(batch)  # refs whose frames were dropped meanwhile are left out
            batch_sizes.append(len(claimed))
            if not claimed:
                return
            for ref in claimed:
                camera = int(ref.meta.camera.removeprefix("cam"))
                np.testing.assert_array_equal(pool.frame(ref.slot), pixels(camera, ref.meta.seq))
            time.sleep(0.004)  # a slow engine: the receivers outrun it
            for ref in claimed:
                assert pool.release(ref)
                processed.append((ref.meta.camera, ref.meta.seq))

        batcher: Batcher[SlotRef] = Batcher(max_batch=3, max_wait_ms=2)
        consumer = threading.Thread(target=consume, args=(refs, batcher, infer))
        consumer.start()
        for receiver in receivers:
            receiver.start()
        for receiver in receivers:
            join(receiver)
            assert receiver.exitcode == 0
        refs.put(None)
        consumer.join(JOIN_S)
        assert not consumer.is_alive()

        account = FrameAccount()
        while True:  # the receivers have exited: all their events are in the pipe
            try:
                kind, camera_name, seq, reason = events.get(timeout=1.0)
            except queue.Empty:
                break
            if kind == "received":
                account.on_received(camera_name, seq)
            else:
                account.on_dropped(camera_name, seq, reason)
        for camera_name, seq in processed:
            account.on_processed(camera_name, seq)

        account.check(settled=True)
        totals = account.totals()
        assert totals.received == 2 * count
        assert totals.processed == len(processed) > 0
        assert totals.dropped.get("queue_full", 0) > 0
        assert max(batch_sizes) > 1
        assert pool.in_use() == 0


# -- no segment left behind (run as a separate supervisor process) ---------------------------

_SUPERVISOR = """
import multiprocessing, os, signal, sys
from defectd.daemon.slots import SlotPool
from tests.daemon import test_slots as t

if __name__ == "__main__":
    ctx = multiprocessing.get_context("spawn")
    mode = sys.argv[1]
    pool = SlotPool.create(sys.argv[2], count=3, height=t.H, width=t.W)
    print(pool.name, flush=True)
    if mode == "self-kill":
        os.kill(os.getpid(), signal.SIGKILL)
    out, ready = ctx.Queue(), ctx.Event()
    if mode == "clean":
        child = ctx.Process(target=t.child_fill, args=(pool.spec, 1, out))
        child.start()
        ref = out.get(timeout=60)
        child.join(60)
        assert pool.frame(ref.slot)[0, 0] == 3
    elif mode == "child-killed":
        child = ctx.Process(target=t.child_hold, args=(pool.spec, out, ready))
        child.start()
        assert ready.wait(60)
        os.kill(child.pid, signal.SIGKILL)
        child.join(60)
        print("reclaimed", len(pool.reclaim(child.pid)), flush=True)
    # no close(), no unlink(): atexit does it
"""


def run_supervisor(mode: str, prefix: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_SUPERVISOR), mode, prefix],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("mode", ["clean", "child-killed"])
def test_supervisor_exit_leaves_no_segment_and_no_tracker_warning(prefix: str, mode: str) -> None:
    result = run_supervisor(mode, prefix)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(prefix)
    if mode == "child-killed":
        assert "reclaimed 2" in result.stdout
    # Python 3.11's resource tracker complains (and unlinks) when attachers register the
    # segment; children here never do.
    assert "resource_tracker" not in result.stderr
    assert "Traceback" not in result.stderr
    assert leftovers(prefix) == []


def test_a_killed_supervisors_segment_is_unlinked_by_the_resource_tracker(prefix: str) -> None:
    result = run_supervisor("self-kill", prefix)
    assert result.returncode == -signal.SIGKILL
    # run() returns when the tracker, which shares the stderr pipe, has exited: by then it
    # has unlinked what the supervisor left.
    assert "leaked shared_memory" in result.stderr
    assert leftovers(prefix) == []
