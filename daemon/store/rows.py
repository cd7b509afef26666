"""Records ↔ table rows, and the statements that write them.

Values are turned into plain Python ints and floats on the way in (numpy scalars from the
pipeline would otherwise fail in the driver, or in `json.dumps`), tuples into JSON text.
"""

from __future__ import annotations

import json
from typing import Any

from defectd.daemon.coils.model import CoilRecord, CoverageGap, StripDefect

NO_COIL = ""  # the stored coil id of records without one (see `schema`)

DEFECT_COLUMNS = (
    "defect_id",
    "line",
    "coil_id",
    "class_id",
    "class_name",
    "across_from_mm",
    "across_to_mm",
    "along_from_m",
    "along_to_m",
    "area_mm2",
    "area_px",
    "max_score",
    "mean_score",
    "first_camera",
    "first_seq",
    "last_camera",
    "last_seq",
    "cameras",
    "frames",
    "capture_ns",
    "crop",
)
GAP_COLUMNS = ("line", "coil_id", "camera", "from_m", "to_m", "frames", "reason")
COIL_COLUMNS = (
    "line",
    "coil_id",
    "started_ns",
    "ended_ns",
    "end_reason",
    "head_m",
    "tail_m",
    "inspected_m",
    "width_mm",
    "frames",
    "defects",
    "classes",
    "gap_m",
    "largest",
    "grade",
    "grade_reasons",
    "anomalies",
)
COIL_KEY = ("line", "coil_id")


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"


INSERT_DEFECTS = _insert("defects", DEFECT_COLUMNS) + " ON CONFLICT (defect_id) DO NOTHING"
INSERT_GAPS = (
    _insert("coverage_gaps", GAP_COLUMNS)
    + " ON CONFLICT (line, coil_id, camera, from_m) DO NOTHING"
)
# A coil may be written again (closed, then re-graded); an older row never overwrites a newer
# one, so a spooled batch replayed late cannot undo a later write.
UPSERT_COILS = (
    _insert("coils", COIL_COLUMNS)
    + " ON CONFLICT (line, coil_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COIL_COLUMNS if c not in COIL_KEY)
    + " WHERE excluded.ended_ns >= coils.ended_ns"
)


def coil_key(coil_id: str | None) -> str:
    """The stored form of a coil id."""
    return NO_COIL if coil_id is None else coil_id


def _coil_id(stored: str) -> str | None:
    return None if stored == NO_COIL else stored


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def defect_row(d: StripDefect) -> tuple[object, ...]:
    """`d` as the values of `DEFECT_COLUMNS`."""
    return (
        d.defect_id,
        d.line,
        coil_key(d.coil_id),
        int(d.class_id),
        d.class_name,
        float(d.across_mm[0]),
        float(d.across_mm[1]),
        float(d.along_m[0]),
        float(d.along_m[1]),
        float(d.area_mm2),
        int(d.area_px),
        float(d.max_score),
        float(d.mean_score),
        d.first_camera,
        int(d.first_seq),
        d.last_camera,
        int(d.last_seq),
        _json(list(d.cameras)),
        int(d.frames),
        int(d.capture_ns),
        d.crop,
    )


def defect_from_row(row: tuple[Any, ...]) -> StripDefect:
    """The record of a row selected as `DEFECT_COLUMNS`."""
    (
        defect_id,
        line,
        coil_id,
        class_id,
        class_name,
        across_from,
        across_to,
        along_from,
        along_to,
        area_mm2,
        area_px,
        max_score,
        mean_score,
        first_camera,
        first_seq,
        last_camera,
        last_seq,
        cameras,
        frames,
        capture_ns,
        crop,
    ) = row
    return StripDefect(
        defect_id=defect_id,
        line=line,
        coil_id=_coil_id(coil_id),
        class_id=int(class_id),
        class_name=class_name,
        across_mm=(float(across_from), float(across_to)),
        along_m=(float(along_from), float(along_to)),
        area_mm2=float(area_mm2),
        area_px=int(area_px),
        max_score=float(max_score),
        mean_score=float(mean_score),
        first_camera=first_camera,
        first_seq=int(first_seq),
        last_camera=last_camera,
        last_seq=int(last_seq),
        cameras=tuple(json.loads(cameras)),
        frames=int(frames),
        capture_ns=int(capture_ns),
        crop=crop,
    )


def gap_row(g: CoverageGap) -> tuple[object, ...]:
    """`g` as the values of `GAP_COLUMNS`."""
    return (
        g.line,
        coil_key(g.coil_id),
        g.camera,
        float(g.from_m),
        float(g.to_m),
        int(g.frames),
        g.reason,
    )


def gap_from_row(row: tuple[Any, ...]) -> CoverageGap:
    """The record of a row selected as `GAP_COLUMNS`."""
    line, coil_id, camera, from_m, to_m, frames, reason = row
    return CoverageGap(
        line=line,
        coil_id=_coil_id(coil_id),
        camera=camera,
        from_m=float(from_m),
        to_m=float(to_m),
        frames=int(frames),
        reason=reason,
    )


def coil_row(c: CoilRecord) -> tuple[object, ...]:
    """`c` as the values of `COIL_COLUMNS`."""
    classes = [
        {
            "class_name": k.class_name,
            "count": int(k.count),
            "area_mm2": float(k.area_mm2),
            "per_100m": float(k.per_100m),
            "per_m2": float(k.per_m2),
        }
        for k in c.classes
    ]
    return (
        c.line,
        c.coil_id,
        int(c.started_ns),
        int(c.ended_ns),
        c.end_reason,
        float(c.head_m),
        float(c.tail_m),
        float(c.inspected_m),
        float(c.width_mm),
        int(c.frames),
        int(c.defects),
        _json(classes),
        float(c.gap_m),
        _json(list(c.largest)),
        c.grade,
        _json(list(c.grade_reasons)),
        _json([[kind, int(count)] for kind, count in c.anomalies]),
    )


def coil_from_row(row: tuple[Any, ...]) -> CoilRecord:
    """The record of a row selected as `COIL_COLUMNS`."""
    values: dict[str, Any] = dict(zip(COIL_COLUMNS, row, strict=True))
    for name in ("classes", "largest", "grade_reasons", "anomalies"):
        values[name] = json.loads(values[name])
    for name in ("started_ns", "ended_ns", "frames", "defects"):
        values[name] = int(values[name])
    for name in ("head_m", "tail_m", "inspected_m", "width_mm", "gap_m"):
        values[name] = float(values[name])
    return CoilRecord.from_dict(values)
