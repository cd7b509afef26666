"""Where a defect lies on the strip: frame pixels → millimetres across, metres along.

Each camera states in its config where its frame lies (`CameraSettings`):

- ``left_mm``: the strip coordinate of the frame's left edge, across the strip (mm from the
  strip's reference edge, the same for every camera of a line, so neighbouring cameras give
  neighbouring numbers);
- ``across_mm_per_px``: millimetres per pixel across (the lens and distance);
- ``along_mm_per_px``: millimetres per pixel along the strip (a line-scan camera's encoder
  step; default: square pixels, the across figure);
- ``along_from``: where a frame's first row lies along the coil — ``position_m``, the frame
  header's (an encoder read by the camera gateway), or ``frames``, counted from the camera's
  frame number (``seq × height × along_mm_per_px``: no encoder, constant speed assumed).

A region's box and area then become `StripPosition`: its extent across (mm) and along (m)
and its size in mm and mm². Without ``across_mm_per_px`` a camera has no geometry and its
events stay in pixels; with ``along_from: position_m`` and a frame without one, the along
figures are left out and the across ones kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the config imports the events, which import this module
    from defectd.daemon.config.schema import CameraSettings


@dataclass(frozen=True)
class StripPosition:
    """One region on the strip."""

    across_mm: tuple[float, float]  # from, to
    along_m: tuple[float, float] | None  # from, to; None: the frame's position is unknown
    width_mm: float  # across
    length_mm: float  # along
    area_mm2: float

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "across_mm": [round(v, 2) for v in self.across_mm],
            "width_mm": round(self.width_mm, 2),
            "length_mm": round(self.length_mm, 2),
            "area_mm2": round(self.area_mm2, 2),
        }
        if self.along_m is not None:
            out["along_m"] = [round(v, 4) for v in self.along_m]
        return out


@dataclass(frozen=True)
class StripGeometry:
    """One camera's frame on the strip (module docstring)."""

    left_mm: float
    across_mm_per_px: float
    along_mm_per_px: float
    along_from: str  # "position_m" | "frames"

    @classmethod
    def of(cls, camera: CameraSettings) -> StripGeometry | None:
        """The camera's geometry, or None when its config gives none."""
        if camera.across_mm_per_px is None:
            return None
        along = camera.along_mm_per_px or camera.across_mm_per_px
        return cls(camera.left_mm, camera.across_mm_per_px, along, camera.along_from)

    def area_mm2(self, area_px: int) -> float:
        return area_px * self.across_mm_per_px * self.along_mm_per_px

    def frame_top_m(self, seq: int, height: int, position_m: float | None) -> float | None:
        """Where the frame's first row lies along the coil, in metres (None: unknown)."""
        if self.along_from == "frames":
            return seq * height * self.along_mm_per_px / 1000.0
        return position_m

    def place(
        self,
        bbox: tuple[int, int, int, int],
        area_px: int,
        seq: int,
        height: int,
        position_m: float | None,
    ) -> StripPosition:
        """`bbox` (x, y, width, height in frame pixels) and its area on the strip."""
        x, y, w, h = bbox
        across = (
            self.left_mm + x * self.across_mm_per_px,
            self.left_mm + (x + w) * self.across_mm_per_px,
        )
        top = self.frame_top_m(seq, height, position_m)
        along = None
        if top is not None:
            step = self.along_mm_per_px / 1000.0
            along = (top + y * step, top + (y + h) * step)
        return StripPosition(
            across_mm=across,
            along_m=along,
            width_mm=w * self.across_mm_per_px,
            length_mm=h * self.along_mm_per_px,
            area_mm2=self.area_mm2(area_px),
        )
