"""The coil records: what the tracker makes, the store keeps and the reports read.

Plain frozen dataclasses of plain values (str, int, float, tuples), so each turns into a row,
a JSON object and back without loss (`to_dict` / `from_dict`). Positions are on the strip:
across in mm from the strip's reference edge, along in metres from the coil's head.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

RECORD_SCHEMA = 1  # bumped with any change of these fields (the store's migrations follow)


def _tuple_fields(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """JSON gives lists where the dataclass holds tuples: turn them back (nested too)."""
    out = dict(values)
    for f in fields(cls):
        value = out.get(f.name)
        if isinstance(value, list):
            out[f.name] = tuple(tuple(v) if isinstance(v, list) else v for v in value)
    return out


@dataclass(frozen=True)
class StripDefect:
    """One defect on the strip: a region, or regions of consecutive frames and neighbouring
    cameras that touch, of one class."""

    defect_id: str  # unique and stable: "{line}/{coil}/{camera}/{seq}/{class_id}/{n}"
    line: str
    coil_id: str | None  # None: frames that came without a coil id
    class_id: int  # 1-based, as in the model card
    class_name: str
    across_mm: tuple[float, float]  # from, to
    along_m: tuple[float, float]  # from, to (from the coil's head)
    area_mm2: float
    area_px: int
    max_score: float
    mean_score: float  # area-weighted over its regions
    first_camera: str
    first_seq: int
    last_camera: str
    last_seq: int
    cameras: tuple[str, ...]  # in config order
    frames: int  # frames it spans (per camera, counted once)
    capture_ns: int  # the first region's frame
    crop: str | None = None  # JPEG path relative to the crop directory, when saved

    @property
    def length_mm(self) -> float:
        return (self.along_m[1] - self.along_m[0]) * 1000.0

    @property
    def width_mm(self) -> float:
        return self.across_mm[1] - self.across_mm[0]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StripDefect:
        return cls(**_tuple_fields(cls, values))


@dataclass(frozen=True)
class CoverageGap:
    """Strip of a coil that no processed frame of `camera` covers: its frames were lost on
    the wire or dropped in the daemon (stated in every report, never hidden)."""

    line: str
    coil_id: str | None
    camera: str
    from_m: float
    to_m: float
    frames: int  # frames missing there (from the seq gap; 0 when unknown)
    reason: str  # "lost" (seq gap), "dropped" (seq continuous, frame never processed)

    @property
    def length_m(self) -> float:
        return self.to_m - self.from_m

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CoverageGap:
        return cls(**values)


@dataclass(frozen=True)
class ClassCount:
    """One class on one coil."""

    class_name: str
    count: int
    area_mm2: float
    per_100m: float
    per_m2: float


@dataclass(frozen=True)
class CoilRecord:
    """A closed coil: what was inspected, what was found, its grade."""

    line: str
    coil_id: str
    started_ns: int  # first frame's capture time
    ended_ns: int  # last frame's capture time
    end_reason: str  # "next_coil" | "explicit" | "silence" | "shutdown"
    head_m: float  # the first frame's position along the coil
    tail_m: float  # the last frame's end
    inspected_m: float  # metres covered by processed frames (any camera)
    width_mm: float  # across the strip covered by the cameras
    frames: int  # processed frames, all cameras
    defects: int
    classes: tuple[ClassCount, ...]  # every class of the model, in class order
    gap_m: float  # metres in coverage gaps (the longest over cameras)
    largest: tuple[str, ...]  # defect ids of the largest defects, largest first
    grade: str
    grade_reasons: tuple[str, ...]  # the rules that set the grade, e.g. "scratches count 7 > 5"
    anomalies: tuple[tuple[str, int], ...] = ()  # (kind, count): coil id back, seq back, ...

    @property
    def length_m(self) -> float:
        return self.tail_m - self.head_m

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CoilRecord:
        values = dict(values)
        values["classes"] = tuple(
            ClassCount(**c) if isinstance(c, dict) else ClassCount(*c) for c in values["classes"]
        )
        values["largest"] = tuple(values["largest"])
        values["grade_reasons"] = tuple(values["grade_reasons"])
        values["anomalies"] = tuple(tuple(a) for a in values.get("anomalies", ()))
        return cls(**values)
