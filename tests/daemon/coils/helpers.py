"""Tiny placed frames for the coil tests: 1 mm per pixel, frames 100 px (0.1 m) long."""

from __future__ import annotations

from defectd.daemon.coils.placed import PlacedFrame, PlacedRegion

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
