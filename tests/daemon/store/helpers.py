"""Tiny records for the store's tests, built from the real dataclasses, and a poll helper."""

from __future__ import annotations

import time
from collections.abc import Callable

from defectd.daemon.coils.model import ClassCount, CoilRecord, CoverageGap, StripDefect
from defectd.daemon.store.batch import StoreBatch

T0 = 1_700_000_000_000_000_000  # capture time of defect 0
STEP_NS = 1_000_000_000  # between consecutive defects


def defect(
    n: int,
    *,
    line: str = "L1",
    coil_id: str | None = "C1",
    class_name: str = "scratches",
    capture_ns: int | None = None,
    crop: str | None = None,
) -> StripDefect:
    """Defect number `n`: along the coil at n metres, captured n seconds after T0."""
    return StripDefect(
        defect_id=f"{line}/{coil_id}/cam1/{100 + n}/3/{n}",
        line=line,
        coil_id=coil_id,
        class_id=3,
        class_name=class_name,
        across_mm=(10.0 + n, 12.5 + n),
        along_m=(float(n), n + 0.1),
        area_mm2=0.1 + 0.2,  # not exact in binary: stored and read back bit for bit
        area_px=40 + n,
        max_score=0.9,
        mean_score=0.75,
        first_camera="cam1",
        first_seq=100 + n,
        last_camera="cam2",
        last_seq=101 + n,
        cameras=("cam1", "cam2"),
        frames=2,
        capture_ns=T0 + n * STEP_NS if capture_ns is None else capture_ns,
        crop=crop,
    )


def gap(
    n: int, *, line: str = "L1", coil_id: str | None = "C1", camera: str = "cam1"
) -> CoverageGap:
    """A 0.5 m gap at n metres."""
    return CoverageGap(line, coil_id, camera, float(n), n + 0.5, 3, "lost")


def coil(
    coil_id: str = "C1",
    *,
    line: str = "L1",
    ended_ns: int = T0 + 60 * STEP_NS,
    grade: str = "A",
    defects: int = 1,
) -> CoilRecord:
    """A closed coil of 100 m."""
    return CoilRecord(
        line=line,
        coil_id=coil_id,
        started_ns=ended_ns - 60 * STEP_NS,
        ended_ns=ended_ns,
        end_reason="next_coil",
        head_m=0.0,
        tail_m=100.0,
        inspected_m=99.5,
        width_mm=1200.0,
        frames=400,
        defects=defects,
        classes=(
            ClassCount("pits", 0, 0.0, 0.0, 0.0),
            ClassCount("scratches", defects, 4.5, 1.0, 0.0083),
        ),
        gap_m=0.5,
        largest=(f"{line}/{coil_id}/cam1/100/3/0",),
        grade=grade,
        grade_reasons=("scratches count 1 ≤ 5",),
        anomalies=(("seq_back", 1),),
    )


def defect_batch(
    first: int, count: int, *, line: str = "L1", coil_id: str | None = "C1"
) -> StoreBatch:
    """Defects first … first + count - 1, and a gap at the first."""
    return StoreBatch(
        defects=tuple(defect(n, line=line, coil_id=coil_id) for n in range(first, first + count)),
        gaps=(gap(first, line=line, coil_id=coil_id),),
    )


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0, what: str = "") -> None:
    """Poll `condition` until it holds; AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what or condition}")
        time.sleep(0.01)
