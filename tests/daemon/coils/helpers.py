"""Tiny placed frames for the coil tests: 1 mm per pixel, frames 100 px (0.1 m) long."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from defectd.daemon.coils.grading import parse_rules
from defectd.daemon.coils.placed import PlacedFrame, PlacedRegion
from defectd.daemon.coils.tracker import CoilTracker, TrackerOutput, TrackerSettings
from defectd.daemon.store.backend import open_store
from defectd.daemon.store.batch import StoreBatch
from defectd.daemon.store.crops import CropStore

H, W = 100, 200  # px; 1 mm a pixel each way
LENGTH_M = H / 1000.0


def region(
    x: int, y: int, w: int, h: int, *, top_m: float, left_mm: float = 0.0, class_id: int = 1,
    score: float = 0.9,
) -> PlacedRegion:  # fmt: skip
    return PlacedRegion(
        class_id=class_id,
        class_name=f"c{class_id}",
        across_mm=(left_mm + x, left_mm + x + w),
        along_m=(top_m + y / 1000.0, top_m + (y + h) / 1000.0),
        area_mm2=float(w * h),
        area_px=w * h,
        max_score=score,
        mean_score=score - 0.1,
        bbox=(x, y, w, h),
        at_top=y == 0,
        at_bottom=y + h >= H,
    )


def frame(
    camera: str, seq: int, *boxes: tuple[int, int, int, int] | tuple[int, int, int, int, int],
    coil: str | None = "C1", left_mm: float = 0.0, top_m: float | None = None,
    line: str = "line1",
) -> PlacedFrame:  # fmt: skip
    """Frame `seq` of `camera` at seq × 0.1 m (or `top_m`), with regions (x, y, w, h[, class])."""
    top = seq * LENGTH_M if top_m is None else top_m
    regions = tuple(
        region(*box[:4], top_m=top, left_mm=left_mm, class_id=box[4] if len(box) > 4 else 1)
        for box in boxes
    )
    return PlacedFrame(
        line=line,
        camera=camera,
        seq=seq,
        capture_ns=1_000_000_000 + seq * 20_000_000,
        coil_id=coil,
        top_m=top,
        length_m=LENGTH_M,
        across_mm=(left_mm, left_mm + W),
        frame_shape=(H, W),
        regions=regions,
    )


def fill_store(state: Path, *, odd_coil: str | None = None) -> str:
    """Coils of one camera in ``state/defects.db`` (its URL returned) with crops in
    ``state/crops``: C1 (grade B: a scratch over two frames, lost frames), C2 (clean, A) and,
    with `odd_coil`, a third coil of that id (A)."""
    settings = TrackerSettings(
        classes=("c1", "c2"),
        rules=parse_rules(["A", "B"], [{"grade": "B", "class": "c1", "count_over": 1}]),
    )
    tracker = CoilTracker("line1", ["top"], settings)
    out = TrackerOutput()
    frames = [frame("top", s, *([(10, 10, 5, 5)] if s % 3 == 0 else [])) for s in range(12)]
    frames[4] = frame("top", 4, (20, 0, 5, 100))
    frames[5] = frame("top", 5, (20, 0, 5, 50))
    del frames[8:10]  # lost: a coverage gap
    for item in frames:
        out += tracker.add(item)
    for seq in range(12, 20):
        out += tracker.add(frame("top", seq, coil="C2"))
    if odd_coil is not None:
        for seq in range(20, 23):
            out += tracker.add(frame("top", seq, (50, 20, 8, 8, 2), coil=odd_coil))
    out += tracker.close()
    state.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{state / 'defects.db'}"
    crops = CropStore(state / "crops", 10**8)
    defects = []
    for defect in out.defects:
        pixels = np.full((40, 60), 90, np.uint8)
        pixels[10:30, 20:40] = 220
        path = crops.save(defect.defect_id, pixels, coil_id=defect.coil_id)
        defects.append(type(defect)(**{**defect.__dict__, "crop": path}))
    store = open_store(url)
    try:
        store.write(StoreBatch(tuple(defects), out.gaps, out.coils))
    finally:
        store.close()
    return url
