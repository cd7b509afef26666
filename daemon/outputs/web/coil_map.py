"""A coil's map as PNG bytes: the report's picture (`coils.report.coil_map`), also while the
coil is still open.

A closed coil has its record. An open one has none yet, so a provisional record is made from
what is known so far: its strip defects already final (in the store under its coil id), its
coverage gaps already found, and where the events put it on the strip (`extent`); its grade
reads "open" until the coil closes and the daemon grades it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from defectd.daemon.coils.model import CoilRecord, CoverageGap, StripDefect
from defectd.daemon.outputs.web.extent import CoilExtent

OPEN_GRADE = "open"


def map_png(
    coil: CoilRecord,
    defects: Sequence[StripDefect],
    gaps: Sequence[CoverageGap],
    classes: Sequence[str],
) -> bytes:
    """The coil map of `coil` encoded as PNG; `classes`: names of classes 1..N (empty: the
    record's own)."""
    import cv2

    from defectd.daemon.coils.report import coil_map

    names = tuple(classes) or tuple(count.class_name for count in coil.classes)
    ok, encoded = cv2.imencode(".png", coil_map(coil, defects, gaps, names))
    if not ok:
        raise OSError(f"OpenCV could not encode the map of coil {coil.coil_id} as PNG")
    return bytes(encoded.tobytes())


def open_record(
    line: str,
    coil_id: str,
    extent: CoilExtent | None,
    defects: Sequence[StripDefect],
    gaps: Sequence[CoverageGap],
) -> CoilRecord:
    """A provisional record of a coil still open (module docstring)."""
    alongs = [v for d in defects for v in d.along_m if math.isfinite(v)]
    alongs += [v for g in gaps for v in (g.from_m, g.to_m) if math.isfinite(v)]
    across = [v for d in defects for v in d.across_mm if math.isfinite(v)]
    frames = 0
    if extent is not None:
        alongs += [v for v in (extent.head_m, extent.tail_m) if v is not None]
        if extent.across_mm is not None:
            across += list(extent.across_mm)
        frames = extent.frames
    head, tail = (min(alongs), max(alongs)) if alongs else (math.nan, math.nan)
    width = max(across) - min(0.0, min(across)) if across else math.nan
    per_camera: dict[str, float] = {}
    for gap in gaps:
        per_camera[gap.camera] = per_camera.get(gap.camera, 0.0) + abs(gap.to_m - gap.from_m)
    return CoilRecord(
        line=line,
        coil_id=coil_id,
        started_ns=min((d.capture_ns for d in defects), default=0),
        ended_ns=max((d.capture_ns for d in defects), default=0),
        end_reason=OPEN_GRADE,
        head_m=head,
        tail_m=tail,
        inspected_m=tail - head if alongs else 0.0,
        width_mm=width,
        frames=frames,
        defects=len(defects),
        classes=(),
        gap_m=max(per_camera.values(), default=0.0),
        largest=(),
        grade=OPEN_GRADE,
        grade_reasons=(),
    )
