"""The stages' pure parts: fast-path routing, slot notes, batching straight from the table."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pytest

from defectd.daemon.slots import FrameMeta, SlotPool, SlotState
from defectd.daemon.stages.inference import candidate_classes, worker_for
from defectd.daemon.stages.receiver import FrameNote
from defectd.engines.postprocess import ClassThresholds, PostprocessConfig


@pytest.fixture
def pool() -> Iterator[SlotPool]:
    with SlotPool.create("defectd-test", 4, 2, 3) as created:
        yield created


def test_candidate_classes_need_presence_and_peak() -> None:
    config = PostprocessConfig(
        (ClassThresholds(presence=0.5, pixel=0.6), ClassThresholds(presence=0.0, pixel=0.9))
    )
    presence = np.array([0.5, 0.0])
    assert candidate_classes(presence, np.array([0.6, 0.9]), config) == (0, 1)
    assert candidate_classes(presence, np.array([0.59, 0.95]), config) == (1,)
    assert candidate_classes(np.array([0.49, 0.0]), np.array([1.0, 0.1]), config) == ()


def test_a_camera_always_goes_to_the_same_worker() -> None:
    assert {worker_for("cam0", 3) for _ in range(5)} == {worker_for("cam0", 3)}
    assert {worker_for(f"cam{i}", 3) for i in range(30)} == {0, 1, 2}


def test_frame_note_round_trip_fits_a_slot(pool: SlotPool) -> None:
    note = FrameNote(2**62, 5, "Ω" * 64, 1e6)
    assert FrameNote.decode(note.encode()) == note
    ref = pool.acquire(FrameMeta("cam0", 1, 1.0)).ref
    assert ref is not None
    assert pool.write_note(ref, note.encode())
    assert pool.commit(ref)
    assert pool.note(ref) == note.encode()
    assert pool.write_note(ref, b"x") is False  # READY: no longer being filled


def test_ready_lists_frames_in_commit_order(pool: SlotPool) -> None:
    refs = [pool.acquire(FrameMeta("cam0", seq, float(seq))).ref for seq in range(3)]
    assert all(refs)
    for ref in reversed(refs):  # committed last-first
        assert ref is not None and pool.commit(ref)
    tickets, listed = zip(*pool.ready(), strict=True)
    assert list(tickets) == sorted(tickets)
    assert [ref.meta.seq for ref in listed] == [2, 1, 0]
    assert pool.claim(listed[:1]) == [listed[0]]
    assert [ref.meta.seq for _, ref in pool.ready()] == [1, 0]


def test_reclaim_can_keep_ready_frames(pool: SlotPool) -> None:
    filling = pool.acquire(FrameMeta("cam0", 1, 1.0)).ref
    ready = pool.acquire(FrameMeta("cam0", 2, 2.0)).ref
    assert filling is not None and ready is not None and pool.commit(ready)
    lost = pool.reclaim(os.getpid(), keep_ready=True)
    assert [meta.seq for meta in lost] == [1]
    assert pool.state(ready.slot) == SlotState.READY


def test_reclaim_narrowed_to_a_state_and_cameras(pool: SlotPool) -> None:
    refs = []
    for camera in ("cam0", "cam1", "cam0"):
        ref = pool.acquire(FrameMeta(camera, len(refs), float(len(refs)))).ref
        assert ref is not None and pool.commit(ref)
        refs.append(ref)
    assert pool.claim(refs) == refs
    assert pool.advance(refs[0], SlotState.INFERRED) and pool.advance(refs[1], SlotState.INFERRED)
    lost = pool.reclaim(os.getpid(), state=SlotState.INFERRED, cameras=["cam0"])
    assert [(meta.camera, meta.seq) for meta in lost] == [("cam0", 0)]
    assert pool.state(refs[1].slot) == SlotState.INFERRED
    assert pool.state(refs[2].slot) == SlotState.BATCHED
