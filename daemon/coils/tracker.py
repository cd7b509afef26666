"""Coils from the frames' coil ids: what each one had, where it was not seen, its grade.

A coil opens with the first frame that carries a new ``coil_id`` and closes when a frame
carries another one (``next_coil``), a frame carries none (``explicit``: the side channel's
``"coil_id": null``), no frame came for ``silence_s`` (``silence``, from `tick`), or the
daemon stops (``shutdown``). Per coil: frames, the metres the processed frames cover, strip
defects (`merge.StripMerger`) by class with their densities, the largest ones, coverage gaps
per camera (a frame starting past the previous one's end: frames lost on the wire or dropped
in the daemon, or the position jumped) and a grade (`grading`).

Bad input is counted per coil in ``anomalies``, never fatal: a frame of a coil that already
closed (``coil_back``: its defects are kept, its coil's report is not reopened), a camera's
seq going back (``seq_back``), a position going back (``position_back``), a frame with no
position (``no_position``: placed after the camera's previous frame).
"""

from __future__ import annotations

import heapq
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from defectd.daemon.coils.grading import GradeRules
from defectd.daemon.coils.merge import DEFAULT_TOLERANCE_MM, StripMerger
from defectd.daemon.coils.model import ClassCount, CoilRecord, CoverageGap, StripDefect
from defectd.daemon.coils.placed import PlacedFrame

CLOSED_REMEMBERED = 64  # closed coil ids kept to recognise a coil id that comes back


@dataclass(frozen=True)
class TrackerSettings:
    """``coils:`` of the config, and the model's classes."""

    classes: tuple[str, ...]
    silence_s: float = 30.0
    largest: int = 10  # defect ids a coil record lists
    tolerance_mm: float = DEFAULT_TOLERANCE_MM
    rules: GradeRules = GradeRules()  # noqa: RUF009 (frozen: one instance is safe)


@dataclass(frozen=True)
class TrackerOutput:
    """What became final: defects, gaps and closed coils (write them in this order)."""

    defects: tuple[StripDefect, ...] = ()
    gaps: tuple[CoverageGap, ...] = ()
    coils: tuple[CoilRecord, ...] = ()

    def __add__(self, other: TrackerOutput) -> TrackerOutput:
        return TrackerOutput(
            self.defects + other.defects, self.gaps + other.gaps, self.coils + other.coils
        )

    @property
    def empty(self) -> bool:
        return not (self.defects or self.gaps or self.coils)


@dataclass
class _Camera:
    seq: int
    top_m: float
    bottom_m: float
    covered: list[list[float]] = field(default_factory=list)  # merged [from, to] intervals
    gap_m: float = 0.0


@dataclass
class _Coil:
    coil_id: str
    started_ns: int
    merger: StripMerger
    ended_ns: int = 0
    frames: int = 0
    head_m: float = float("inf")
    tail_m: float = float("-inf")
    across: list[float] = field(default_factory=lambda: [float("inf"), float("-inf")])
    cameras: dict[str, _Camera] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    areas: dict[str, float] = field(default_factory=dict)
    largest_by_class: dict[str, float] = field(default_factory=dict)
    largest: list[tuple[float, str]] = field(default_factory=list)  # min-heap (area, id)
    anomalies: Counter[str] = field(default_factory=Counter)
    last_seen_ns: int = 0


class CoilTracker:
    """Coils of one line (module docstring)."""

    def __init__(self, line: str, cameras: Sequence[str], settings: TrackerSettings) -> None:
        self._line = line
        self._cameras = tuple(cameras)
        self._settings = settings
        self._coil: _Coil | None = None
        self._closed: OrderedDict[str, None] = OrderedDict()
        self._loose = StripMerger(cameras, settings.tolerance_mm)  # frames without a coil
        self.anomalies: Counter[str] = Counter()  # over the whole run

    @property
    def current(self) -> str | None:
        """The open coil's id."""
        return None if self._coil is None else self._coil.coil_id

    def add(self, frame: PlacedFrame, now_ns: int | None = None) -> TrackerOutput:
        """File one processed frame; what became final."""
        out = TrackerOutput()
        coil = self._coil
        if frame.coil_id is None:
            if coil is not None:
                out += self._close("explicit")
            return out + self._defects(self._loose.add(self._placed(frame, None)), None)
        if coil is None or frame.coil_id != coil.coil_id:
            if frame.coil_id in self._closed:
                self._count(None, "coil_back")
                merger = StripMerger(self._cameras, self._settings.tolerance_mm)
                found = merger.add(self._placed(frame, None)) + merger.flush()
                return out + self._defects(found, None)
            if coil is not None:
                out += self._close("next_coil")
            merger = StripMerger(self._cameras, self._settings.tolerance_mm)
            coil = self._coil = _Coil(frame.coil_id, frame.capture_ns, merger)
        placed = self._placed(frame, coil)
        gaps: list[CoverageGap] = []
        self._cover(coil, placed, gaps)
        coil.frames += 1
        coil.ended_ns = max(coil.ended_ns, frame.capture_ns)
        coil.last_seen_ns = now_ns if now_ns is not None else frame.capture_ns
        coil.across[0] = min(coil.across[0], frame.across_mm[0])
        coil.across[1] = max(coil.across[1], frame.across_mm[1])
        out += TrackerOutput(gaps=tuple(gaps))
        return out + self._defects(coil.merger.add(placed), coil)

    def end_coil(self, reason: str = "explicit") -> TrackerOutput:
        """Close the open coil now (an explicit end from the plant)."""
        return self._close(reason) if self._coil is not None else TrackerOutput()

    def tick(self, now_ns: int) -> TrackerOutput:
        """Close the open coil if no frame came for ``silence_s``."""
        coil = self._coil
        if coil is not None and now_ns - coil.last_seen_ns > self._settings.silence_s * 1e9:
            return self._close("silence")
        return TrackerOutput()

    def close(self) -> TrackerOutput:
        """The daemon stops: close the open coil and every open defect."""
        out = self.end_coil("shutdown")
        return out + self._defects(self._loose.flush(), None)

    # -- internals ---------------------------------------------------------------------

    def _count(self, coil: _Coil | None, kind: str) -> None:
        self.anomalies[kind] += 1
        if coil is not None:
            coil.anomalies[kind] += 1

    def _placed(self, frame: PlacedFrame, coil: _Coil | None) -> PlacedFrame:
        """The frame with a position: its own, or after its camera's previous frame."""
        if frame.top_m is not None:
            return frame
        self._count(coil, "no_position")
        previous = coil.cameras.get(frame.camera) if coil is not None else None
        return frame.at(previous.bottom_m if previous is not None else 0.0)

    def _cover(self, coil: _Coil, frame: PlacedFrame, gaps: list[CoverageGap]) -> None:
        top, bottom = frame.top_m or 0.0, frame.bottom_m or 0.0
        coil.head_m, coil.tail_m = min(coil.head_m, top), max(coil.tail_m, bottom)
        tol_m = self._settings.tolerance_mm / 1000.0
        camera = coil.cameras.get(frame.camera)
        if camera is None:
            camera = coil.cameras[frame.camera] = _Camera(frame.seq, top, bottom)
        else:
            if frame.seq <= camera.seq:
                self._count(coil, "seq_back")
            if top < camera.top_m - tol_m:
                self._count(coil, "position_back")
            elif top > camera.bottom_m + tol_m and frame.seq > camera.seq:
                missing = frame.seq - camera.seq - 1
                gap = CoverageGap(
                    line=self._line,
                    coil_id=coil.coil_id,
                    camera=frame.camera,
                    from_m=camera.bottom_m,
                    to_m=top,
                    frames=missing,
                    reason="missing" if missing > 0 else "position_jump",
                )
                gaps.append(gap)
                camera.gap_m += gap.length_m
            if frame.seq > camera.seq:
                camera.seq, camera.top_m, camera.bottom_m = frame.seq, top, bottom
        _cover_interval(camera.covered, top, bottom)

    def _defects(self, defects: list[StripDefect], coil: _Coil | None) -> TrackerOutput:
        if coil is not None:
            for defect in defects:
                coil.counts[defect.class_name] += 1
                coil.areas[defect.class_name] = (
                    coil.areas.get(defect.class_name, 0.0) + defect.area_mm2
                )
                best = coil.largest_by_class.get(defect.class_name, 0.0)
                coil.largest_by_class[defect.class_name] = max(best, defect.area_mm2)
                item = (defect.area_mm2, defect.defect_id)
                if len(coil.largest) < self._settings.largest:
                    heapq.heappush(coil.largest, item)
                else:
                    heapq.heappushpop(coil.largest, item)
        return TrackerOutput(defects=tuple(defects))

    def _close(self, reason: str) -> TrackerOutput:
        coil = self._coil
        assert coil is not None
        self._coil = None
        out = self._defects(coil.merger.flush(), coil)
        self._closed[coil.coil_id] = None
        while len(self._closed) > CLOSED_REMEMBERED:
            self._closed.popitem(last=False)
        return out + TrackerOutput(coils=(self._record(coil, reason),))

    def _record(self, coil: _Coil, reason: str) -> CoilRecord:
        intervals: list[list[float]] = []
        for camera in coil.cameras.values():
            for start, end in camera.covered:
                _cover_interval(intervals, start, end)
        inspected = sum(end - start for start, end in intervals)
        width_mm = max(0.0, coil.across[1] - coil.across[0])
        area_m2 = inspected * width_mm / 1000.0
        classes = tuple(
            ClassCount(
                class_name=name,
                count=coil.counts[name],
                area_mm2=round(coil.areas.get(name, 0.0), 3),
                per_100m=coil.counts[name] * 100.0 / inspected if inspected > 0 else 0.0,
                per_m2=coil.counts[name] / area_m2 if area_m2 > 0 else 0.0,
            )
            for name in (
                *self._settings.classes,
                *sorted(set(coil.counts) - set(self._settings.classes)),
            )
        )
        gap_m = max((camera.gap_m for camera in coil.cameras.values()), default=0.0)
        grade, reasons = self._settings.rules.grade(classes, coil.largest_by_class, gap_m)
        largest = tuple(i for _, i in sorted(coil.largest, key=lambda item: (-item[0], item[1])))
        return CoilRecord(
            line=self._line,
            coil_id=coil.coil_id,
            started_ns=coil.started_ns,
            ended_ns=coil.ended_ns,
            end_reason=reason,
            head_m=coil.head_m if coil.frames else 0.0,
            tail_m=coil.tail_m if coil.frames else 0.0,
            inspected_m=inspected,
            width_mm=width_mm,
            frames=coil.frames,
            defects=sum(coil.counts.values()),
            classes=classes,
            gap_m=gap_m,
            largest=largest,
            grade=grade,
            grade_reasons=reasons,
            anomalies=tuple(sorted(coil.anomalies.items())),
        )


def _cover_interval(intervals: list[list[float]], start: float, end: float) -> None:
    """Add [start, end] to sorted, disjoint `intervals`, merging what it touches."""
    merged = [start, end]
    kept = []
    for interval in intervals:
        if interval[1] < merged[0] - 1e-9 or interval[0] > merged[1] + 1e-9:
            kept.append(interval)
        else:
            merged = [min(merged[0], interval[0]), max(merged[1], interval[1])]
    kept.append(merged)
    kept.sort()
    intervals[:] = kept
