"""Where a coil still open lies on the strip, learnt from the events alone.

A closed coil's record says where it starts and ends; an open one has no record yet, but its
map should still grow as the strip passes. The web view knows no camera geometry (it reads
only events), so each camera's scale is learnt from its placed regions: a region's box in
pixels beside its extent on the strip gives the frame's length along and its extent across.
A frame then lies at its header's ``position_m``, or at ``seq × length`` for a camera whose
regions show it counts position from frames (``along_from: frames``).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

REMEMBERED = 8  # coils whose extent is kept (the open one and those just closed)
_SAME_M = 1e-4  # a frame top this close to seq × length: the camera counts frames


@dataclass(frozen=True)
class CoilExtent:
    """What the events said so far about one coil's place on the strip."""

    coil_id: str
    head_m: float | None  # the first row of its first frame, along the coil
    tail_m: float | None  # the end of its last frame seen
    across_mm: tuple[float, float] | None  # the frames' extent across, all cameras
    frames: int  # frame summaries seen


@dataclass
class _Scale:
    """One camera's frame on the strip, as its regions show it."""

    length_m: float | None = None
    across_mm: tuple[float, float] | None = None
    counts_frames: bool = False


@dataclass
class _Coil:
    head_m: float | None = None
    tail_m: float | None = None
    across_mm: tuple[float, float] | None = None
    frames: int = 0

    def along(self, low: float, high: float) -> None:
        self.head_m = low if self.head_m is None else min(self.head_m, low)
        self.tail_m = high if self.tail_m is None else max(self.tail_m, high)

    def across(self, span: tuple[float, float]) -> None:
        old = self.across_mm
        self.across_mm = span if old is None else (min(old[0], span[0]), max(old[1], span[1]))


class ExtentTracker:
    """Coil extents from frame summaries and defect events (module docstring)."""

    def __init__(self, remembered: int = REMEMBERED) -> None:
        self._remembered = remembered
        self._scales: dict[str, _Scale] = {}
        self._coils: OrderedDict[str, _Coil] = OrderedDict()

    def frame(self, coil_id: str | None, camera: str, seq: int, position_m: float | None) -> None:
        """A frame summary of `camera`."""
        if coil_id is None:
            return
        coil = self._coil(coil_id)
        coil.frames += 1
        scale = self._scales.get(camera, _Scale())
        top = position_m if _finite(position_m) else None
        if top is None and scale.counts_frames and scale.length_m is not None:
            top = seq * scale.length_m
        if top is not None:
            coil.along(top, top + (scale.length_m or 0.0))
        if scale.across_mm is not None:
            coil.across(scale.across_mm)

    def region(
        self,
        coil_id: str | None,
        camera: str,
        seq: int,
        frame_shape: Sequence[int],
        region: Mapping[str, Any],
    ) -> None:
        """One region of a defect event (its ``bbox`` and, when placed, its ``strip``)."""
        strip = region.get("strip")
        bbox = region.get("bbox")
        if not isinstance(strip, Mapping) or not isinstance(bbox, Sequence) or len(bbox) != 4:
            return
        x, y, w, h = (float(v) for v in bbox)
        height, width = (float(v) for v in frame_shape[:2])
        scale = self._scales.setdefault(camera, _Scale())
        across = _pair(strip.get("across_mm"))
        if across is not None and w > 0:
            per_px = (across[1] - across[0]) / w
            left = across[0] - x * per_px
            scale.across_mm = (left, left + width * per_px)
        along = _pair(strip.get("along_m"))
        if along is not None and h > 0:
            step = (along[1] - along[0]) / h
            top = along[0] - y * step
            scale.length_m = height * step
            scale.counts_frames = abs(top - seq * scale.length_m) < _SAME_M
        if coil_id is None:
            return
        coil = self._coil(coil_id)
        if along is not None:
            coil.along(*along)
        if across is not None:
            coil.across(across)

    def get(self, coil_id: str) -> CoilExtent | None:
        """The extent of `coil_id`, None when no event of it was seen (or it was forgotten)."""
        coil = self._coils.get(coil_id)
        if coil is None:
            return None
        return CoilExtent(coil_id, coil.head_m, coil.tail_m, coil.across_mm, coil.frames)

    def _coil(self, coil_id: str) -> _Coil:
        coil = self._coils.get(coil_id)
        if coil is None:
            coil = self._coils[coil_id] = _Coil()
            while len(self._coils) > self._remembered:
                self._coils.popitem(last=False)
        else:
            self._coils.move_to_end(coil_id)
        return coil


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _pair(value: object) -> tuple[float, float] | None:
    if isinstance(value, Sequence) and len(value) == 2 and all(_finite(v) for v in value):
        low, high = float(value[0]), float(value[1])
        return (low, high) if high >= low else (high, low)
    return None
