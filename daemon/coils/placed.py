"""A processed frame and its regions placed on the strip: what the coil tracker takes.

`place_frame` builds one from a frame's published events (`FrameSummary`, `DefectEvent`s) and
its camera's `StripGeometry`, so the tracker sees millimetres and metres, never pixels, and
knows which regions touch the frame's top or bottom edge (where a defect may go on in the
camera's previous or next frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from defectd.daemon.events import DefectEvent, FrameSummary
from defectd.daemon.geometry import StripGeometry


@dataclass(frozen=True)
class PlacedRegion:
    """One region of one class on the strip."""

    class_id: int
    class_name: str
    across_mm: tuple[float, float]
    along_m: tuple[float, float]
    area_mm2: float
    area_px: int
    max_score: float
    mean_score: float
    bbox: tuple[int, int, int, int]  # x, y, w, h in frame pixels (for the crop)
    at_top: bool  # touches the frame's first row
    at_bottom: bool  # touches its last row


@dataclass(frozen=True)
class PlacedFrame:
    """One processed frame on the strip."""

    line: str
    camera: str
    seq: int
    capture_ns: int
    coil_id: str | None
    top_m: float | None  # along the coil where its first row lies; None: unknown
    length_m: float  # along the strip
    across_mm: tuple[float, float]  # the frame's extent across
    frame_shape: tuple[int, int]  # height, width in pixels
    regions: tuple[PlacedRegion, ...]

    @property
    def bottom_m(self) -> float | None:
        return None if self.top_m is None else self.top_m + self.length_m

    def at(self, top_m: float) -> PlacedFrame:
        """This frame with its first row at `top_m` (an estimate where its own is unknown)."""
        shift = top_m - (self.top_m or 0.0)
        regions = tuple(
            replace(r, along_m=(r.along_m[0] + shift, r.along_m[1] + shift)) for r in self.regions
        )
        return replace(self, top_m=top_m, regions=regions)


def place_frame(
    summary: FrameSummary,
    defects: Sequence[DefectEvent],
    geometry: StripGeometry,
    frame_shape: tuple[int, int],
) -> PlacedFrame:
    """The frame's regions on the strip (`geometry`: its camera's)."""
    height, width = frame_shape
    top = geometry.frame_top_m(summary.seq, height, summary.position_m)
    step_m = geometry.along_mm_per_px / 1000.0
    regions = []
    for event in defects:
        for region in event.regions:
            x, y, w, h = region.bbox
            across = (
                geometry.left_mm + x * geometry.across_mm_per_px,
                geometry.left_mm + (x + w) * geometry.across_mm_per_px,
            )
            base = 0.0 if top is None else top
            regions.append(
                PlacedRegion(
                    class_id=event.class_id,
                    class_name=event.class_name,
                    across_mm=across,
                    along_m=(base + y * step_m, base + (y + h) * step_m),
                    area_mm2=geometry.area_mm2(region.area_px),
                    area_px=region.area_px,
                    max_score=region.max_score,
                    mean_score=region.mean_score,
                    bbox=region.bbox,
                    at_top=y == 0,
                    at_bottom=y + h >= height,
                )
            )
    return PlacedFrame(
        line=summary.line,
        camera=summary.camera_id,
        seq=summary.seq,
        capture_ns=summary.capture_ns,
        coil_id=summary.coil_id,
        top_m=top,
        length_m=height * step_m,
        across_mm=(geometry.left_mm, geometry.left_mm + width * geometry.across_mm_per_px),
        frame_shape=frame_shape,
        regions=tuple(regions),
    )
