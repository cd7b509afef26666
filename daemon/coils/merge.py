"""Regions → strip defects: one defect however many frames and cameras it spans.

Two regions of one class are parts of one strip defect when

- they lie in consecutive frames of one camera, the first touching its frame's last row and
  the second its frame's first row, and they overlap across (a scratch running on from
  frame to frame); or
- they come from different cameras and their rectangles on the strip overlap (neighbouring
  cameras see the same strip where their frames overlap, `cameras[].left_mm`), within
  `tolerance_mm`.

Regions of one frame are never joined to each other directly (connected components already
separated them), though both may join one defect that reaches them from the frame before.

`StripMerger` works as frames arrive: `add` files a frame's regions into open defects and
returns the defects no later frame can reach any more — the camera's next frame cannot go on
with it (it does not touch the newest frame's bottom) and every other camera has passed its
far end — and `flush` closes the rest (a coil's end).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from defectd.daemon.coils.model import StripDefect
from defectd.daemon.coils.placed import PlacedFrame, PlacedRegion

DEFAULT_TOLERANCE_MM = 2.0  # across and along: rounding, one pixel, a camera's overlap error
DEFAULT_LAG_M = 1.0  # how far the other cameras may run ahead of one not heard from yet


@dataclass
class _Open:
    """A strip defect still growing."""

    first: PlacedRegion
    line: str
    coil_id: str | None
    capture_ns: int
    first_part: tuple[str, int]  # camera, seq
    across: list[float]
    along: list[float]
    area_mm2: float = 0.0
    area_px: int = 0
    max_score: float = 0.0
    weighted: float = 0.0  # Σ mean_score × area_px
    parts: set[tuple[str, int]] = field(default_factory=set)  # (camera, seq)
    bottoms: set[tuple[str, int, float, float]] = field(default_factory=set)  # edge parts

    def add(self, frame: PlacedFrame, region: PlacedRegion) -> None:
        self.across[0] = min(self.across[0], region.across_mm[0])
        self.across[1] = max(self.across[1], region.across_mm[1])
        self.along[0] = min(self.along[0], region.along_m[0])
        self.along[1] = max(self.along[1], region.along_m[1])
        self.area_mm2 += region.area_mm2
        self.area_px += region.area_px
        self.max_score = max(self.max_score, region.max_score)
        self.weighted += region.mean_score * region.area_px
        self.parts.add((frame.camera, frame.seq))
        if region.at_bottom:
            self.bottoms.add((frame.camera, frame.seq, *region.across_mm))

    def absorb(self, other: _Open) -> None:
        self.across = [min(self.across[0], other.across[0]), max(self.across[1], other.across[1])]
        self.along = [min(self.along[0], other.along[0]), max(self.along[1], other.along[1])]
        self.area_mm2 += other.area_mm2
        self.area_px += other.area_px
        self.max_score = max(self.max_score, other.max_score)
        self.weighted += other.weighted
        self.parts |= other.parts
        self.bottoms |= other.bottoms
        if (other.capture_ns, other.first_part) < (self.capture_ns, self.first_part):
            self.first, self.capture_ns = other.first, other.capture_ns
            self.first_part = other.first_part


class StripMerger:
    """Open strip defects of one line (module docstring)."""

    def __init__(
        self,
        camera_order: Iterable[str],
        tolerance_mm: float = DEFAULT_TOLERANCE_MM,
        lag_m: float = DEFAULT_LAG_M,
    ) -> None:
        self._order = {camera: index for index, camera in enumerate(camera_order)}
        self._tolerance_mm = tolerance_mm
        self._open: list[_Open] = []
        self._reached: dict[str, float] = {}  # camera → the top of its newest frame
        self._newest: dict[str, int] = {}  # camera → its newest frame's seq
        self._lag_m = lag_m

    @property
    def open_count(self) -> int:
        return len(self._open)

    def add(self, frame: PlacedFrame) -> list[StripDefect]:
        """File `frame`'s regions (its `top_m` known); the defects that are now complete."""
        for region in frame.regions:
            joined = [d for d in self._open if self._joins(d, frame, region)]
            if joined:
                target = joined[0]
                for other in joined[1:]:
                    target.absorb(other)
                    self._open.remove(other)
            else:
                target = _Open(
                    first=region,
                    line=frame.line,
                    coil_id=frame.coil_id,
                    capture_ns=frame.capture_ns,
                    first_part=(frame.camera, frame.seq),
                    across=list(region.across_mm),
                    along=list(region.along_m),
                )
                self._open.append(target)
            target.add(frame, region)
        if frame.top_m is not None and frame.seq >= self._newest.get(frame.camera, frame.seq):
            self._reached[frame.camera] = frame.top_m
            self._newest[frame.camera] = frame.seq
        return self._complete()

    def flush(self) -> list[StripDefect]:
        """Close every open defect (the coil ended); the camera positions start again."""
        done = [self._finish(d) for d in self._open]
        self._open.clear()
        self._reached.clear()
        self._newest.clear()
        return done

    def _joins(self, defect: _Open, frame: PlacedFrame, region: PlacedRegion) -> bool:
        if defect.first.class_id != region.class_id or defect.coil_id != frame.coil_id:
            return False
        tol_mm = self._tolerance_mm
        if region.at_top:
            for camera, seq, left, right in defect.bottoms:
                if (
                    camera == frame.camera
                    and seq == frame.seq - 1
                    and region.across_mm[0] <= right + tol_mm
                    and left - tol_mm <= region.across_mm[1]
                ):
                    return True
        if all(camera == frame.camera for camera, _ in defect.parts):
            return False
        tol_m = tol_mm / 1000.0
        return (
            region.across_mm[0] <= defect.across[1] + tol_mm
            and defect.across[0] - tol_mm <= region.across_mm[1]
            and region.along_m[0] <= defect.along[1] + tol_m
            and defect.along[0] - tol_m <= region.along_m[1]
        )

    def _complete(self) -> list[StripDefect]:
        done = [d for d in self._open if not self._reachable(d)]
        for defect in done:
            self._open.remove(defect)
        return [self._finish(d) for d in done]

    def _reachable(self, defect: _Open) -> bool:
        """Whether a later frame of some camera could still join `defect`: the next frame of
        a camera whose newest frame it touches at the bottom, or a frame of another camera
        that starts before the defect's end (cameras not seen yet are waited for until the
        others are `lag_m` past)."""
        tol_m = self._tolerance_mm / 1000.0
        newest = self._newest
        cameras = {camera for camera, _ in defect.parts}
        lead = max(self._reached.values(), default=0.0)
        for camera in self._order if self._order else self._reached:
            if any(c == camera and seq == newest.get(camera) for c, seq, _, _ in defect.bottoms):
                return True
            if cameras - {camera}:
                reached = self._reached.get(camera, lead - self._lag_m)
                if defect.along[1] + tol_m >= reached:
                    return True
        return False

    def _finish(self, defect: _Open) -> StripDefect:
        cameras = sorted({c for c, _ in defect.parts}, key=lambda c: self._order.get(c, 1 << 30))
        first_camera, first_seq = defect.first_part
        last_camera, last_seq = max(defect.parts, key=lambda part: (part[1], part[0]))
        per_camera = {c: {s for cc, s in defect.parts if cc == c} for c in cameras}
        coil = defect.coil_id or "-"
        region = defect.first
        return StripDefect(
            defect_id=f"{defect.line}/{coil}/{first_camera}/{first_seq}/{region.class_id}/"
            f"{_index(region)}",
            line=defect.line,
            coil_id=defect.coil_id,
            class_id=region.class_id,
            class_name=region.class_name,
            across_mm=(defect.across[0], defect.across[1]),
            along_m=(defect.along[0], defect.along[1]),
            area_mm2=defect.area_mm2,
            area_px=defect.area_px,
            max_score=defect.max_score,
            mean_score=defect.weighted / defect.area_px if defect.area_px else 0.0,
            first_camera=first_camera,
            first_seq=first_seq,
            last_camera=last_camera,
            last_seq=last_seq,
            cameras=tuple(cameras),
            frames=max(len(seqs) for seqs in per_camera.values()),
            capture_ns=defect.capture_ns,
        )


def first_region(defect: StripDefect) -> tuple[str, int, int, tuple[int, int, int, int]]:
    """(camera, seq, class_id, bbox) of the region a strip defect started with (its crop's
    key), read back from its id."""
    x, y, w, h = (int(float(v)) for v in defect.defect_id.rsplit("/", 1)[1].split("."))
    return defect.first_camera, defect.first_seq, defect.class_id, (x, y, w, h)


def _index(region: PlacedRegion) -> str:
    """A region's place in its frame, unique among the frame's regions of its class."""
    x, y, w, h = region.bbox
    return f"{x}.{y}.{w}.{h}"  # `first_region` reads it back
