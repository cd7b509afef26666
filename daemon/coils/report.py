"""A closed coil's report: its defect map as a picture, and the files a MES and a person read.

`coil_map` draws the map the way strip-inspection systems show a coil: length along the
horizontal axis (metres from the head), width along the vertical one (mm from the reference
edge, growing upward), the strip a light grey band, each defect at its place in its class's
colour (`defectd.engines.classes`: the same colour in every picture) as a round marker whose
area grows with the defect's, or as its real rectangle when it is longer or wider than its
marker (scratches). Coverage gaps are hatched over the whole width and labelled "not
inspected"; a legend gives each class's count, the metres not inspected and the marker sizes.
Drawn with OpenCV alone, about 1600 px wide, to read at 100 % zoom.

`write_report` writes into one folder: ``map.png``, ``coil.json`` (the records, plain JSON),
``defects.csv``, ``gaps.csv``, ``crops/`` (the largest defects' crops) and ``report.md``
(last, so a watcher that sees it sees every other file).

Bad records never stop a report: a defect with no finite position or outside head..tail is
left off the map and the report says how many; a coil of zero length gets an axis from its
defects; missing crops are named in the report.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import cv2
import numpy as np
import numpy.typing as npt

from defectd.daemon.coils.model import RECORD_SCHEMA, CoilRecord, CoverageGap, StripDefect
from defectd.engines.classes import FRAME, INK, MUTED, PAPER, WARN, class_colour, class_name
from defectd.engines.files import atomic_write

BGRImage = npt.NDArray[np.uint8]
BGR = tuple[int, int, int]
Range = tuple[float, float]

MAP_WIDTH = 1600
MIN_RADIUS = 3  # px: the smallest defect stays visible
MAX_RADIUS = 22  # px: one big blob must not hide its neighbours
_RADIUS_PER_ROOT_MM = 0.3  # px of radius per √mm² of defect area, past MIN_RADIUS

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_MARGIN = 20
_PLOT_HEIGHT = 440
_PAD = 12  # px inside the plot frame, so a marker on the edge shows whole
_TOP = _MARGIN + 92  # the plot frame's top: title, subtitle and the gap labels above it
_ROW = 26  # a legend row
_NOTE_ROW = 20
_MIN_SIDE = 5  # px: the thinnest a defect drawn at its real extent gets
_PX_LIMIT = 1 << 15  # far outside any picture, inside what OpenCV takes
_HATCH_EVERY = 9  # px between hatch lines

_STRIP: BGR = (224, 224, 224)
_GRID: BGR = (204, 204, 204)
_GAP_FILL: BGR = (200, 232, 252)
HATCH: BGR = (70, 70, 70)  # the hatch lines of a coverage gap

SIZE_KEY_MM2 = (10.0, 100.0, 1000.0)  # marker sizes the legend shows
CSV_COLUMNS = (
    "defect_id",
    "line",
    "coil_id",
    "class_id",
    "class_name",
    "along_from_m",
    "along_to_m",
    "across_from_mm",
    "across_to_mm",
    "length_mm",
    "width_mm",
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
GAP_COLUMNS = (
    "line",
    "coil_id",
    "camera",
    "from_m",
    "to_m",
    "length_m",
    "frames",
    "reason",
)


@dataclass(frozen=True)
class MapLayout:
    """Where the map's data area lies in the picture and what it spans, so callers (and
    tests) can find a place on the strip."""

    width: int
    height: int
    plot: tuple[int, int, int, int]  # x, y, width, height of the data area, in px
    along_m: tuple[float, float]  # the horizontal axis, left to right
    across_mm: tuple[float, float]  # the vertical axis, bottom to top

    def px(self, along_m: float, across_mm: float) -> tuple[int, int]:
        """The pixel (x, y) of a place on the strip."""
        x, y, w, h = self.plot
        (a0, a1), (c0, c1) = self.along_m, self.across_mm
        fx = x + (along_m - a0) / (a1 - a0) * (w - 1)
        fy = y + h - 1 - (across_mm - c0) / (c1 - c0) * (h - 1)
        return _clamp(fx), _clamp(fy)


@dataclass(frozen=True)
class ReportFiles:
    """The files `write_report` wrote."""

    out_dir: Path
    map_png: Path
    coil_json: Path
    defects_csv: Path
    gaps_csv: Path
    report_md: Path
    crops: tuple[Path, ...]  # the largest defects' crops copied, largest first


def marker_radius(area_mm2: float) -> int:
    """Radius in px of a defect's round marker: its area grows with the defect's, from
    MIN_RADIUS (a defect of no or unknown area) up to MAX_RADIUS."""
    if not math.isfinite(area_mm2) or area_mm2 <= 0:
        return MIN_RADIUS
    return round(min(MAX_RADIUS, MIN_RADIUS + _RADIUS_PER_ROOT_MM * math.sqrt(area_mm2)))


def not_inspected_m(coil: CoilRecord, gaps: Sequence[CoverageGap]) -> float:
    """Metres not inspected: the record's, or the camera with the most metres in `gaps` when
    that is more (a record must never show less than its gaps)."""
    per_camera: dict[str, float] = {}
    for gap in gaps:
        if _finite(gap.from_m, gap.to_m):
            per_camera[gap.camera] = per_camera.get(gap.camera, 0.0) + abs(gap.to_m - gap.from_m)
    recorded = coil.gap_m if _finite(coil.gap_m) else 0.0
    return max(recorded, max(per_camera.values(), default=0.0))


def map_layout(
    coil: CoilRecord,
    defects: Sequence[StripDefect],
    gaps: Sequence[CoverageGap],
    classes: Sequence[str],
) -> MapLayout:
    """The layout `coil_map` draws these records in."""
    return _plan(coil, defects, gaps, classes).layout


def coil_map(
    coil: CoilRecord,
    defects: Sequence[StripDefect],
    gaps: Sequence[CoverageGap],
    classes: Sequence[str],
) -> BGRImage:
    """The coil's defect map (module docstring) as a BGR uint8 image; `classes` name the
    classes 1..N, in model-card order."""
    return _draw(_plan(coil, defects, gaps, classes))


def write_report(
    out_dir: Path,
    coil: CoilRecord,
    defects: Sequence[StripDefect],
    gaps: Sequence[CoverageGap],
    classes: Sequence[str],
    crops_dir: Path | None,
) -> ReportFiles:
    """Write the coil's report files into `out_dir` (made when missing; module docstring).
    `crops_dir` is where the defects' ``crop`` paths start; None: crops were not kept."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = _plan(coil, defects, gaps, classes)
    thumbs = _copy_crops(out_dir, coil, defects, crops_dir)

    map_png = out_dir / "map.png"
    ok, encoded = cv2.imencode(".png", _draw(plan))
    if not ok:
        raise OSError(f"OpenCV could not encode the map of coil {coil.coil_id} as PNG")
    _write(map_png, encoded.tobytes())

    document = {
        "record_schema": RECORD_SCHEMA,
        "coil": coil.to_dict(),
        "defects": [defect.to_dict() for defect in defects],
        "gaps": [gap.to_dict() for gap in gaps],
    }
    # Plain JSON: NaN and infinities (bad input) become null, which every parser reads.
    text = json.dumps(_plain(document), indent=2, allow_nan=False, ensure_ascii=False)
    coil_json = _write(out_dir / "coil.json", (text + "\n").encode())
    defects_csv = _write(out_dir / "defects.csv", _csv(CSV_COLUMNS, map(_defect_row, defects)))
    gaps_csv = _write(out_dir / "gaps.csv", _csv(GAP_COLUMNS, map(_gap_row, gaps)))
    markdown = _markdown(coil, defects, gaps, thumbs, plan.notes)
    report_md = _write(out_dir / "report.md", markdown.encode())
    copied = tuple(out_dir / t.link for t in thumbs if t.link is not None)
    return ReportFiles(out_dir, map_png, coil_json, defects_csv, gaps_csv, report_md, copied)


# -- the map's plan: what goes where ---------------------------------------------------------


@dataclass(frozen=True)
class _Mark:
    colour: BGR
    area_mm2: float
    along_m: tuple[float, float]
    across_mm: tuple[float, float]


@dataclass(frozen=True)
class _LegendItem:
    kind: str  # "class" | "gap" | "size" | "text"
    text: str
    colour: BGR = INK
    radius: int = MIN_RADIUS
    x: int = 0  # left edge, px
    row: int = 0


@dataclass(frozen=True)
class _Plan:
    layout: MapLayout
    title: str
    subtitle: str
    strip: tuple[float, float, float, float] | None  # along from, to; across from, to
    marks: tuple[_Mark, ...]  # largest first: small ones are drawn on top
    gaps: tuple[tuple[float, float], ...]  # merged, on the along axis
    x_ticks: tuple[tuple[float, str], ...]
    y_ticks: tuple[tuple[float, str], ...]
    legend: tuple[_LegendItem, ...]
    legend_top: int
    notes: tuple[str, ...]  # what could not be drawn, and why


def _plan(
    coil: CoilRecord,
    defects: Sequence[StripDefect],
    gaps: Sequence[CoverageGap],
    classes: Sequence[str],
) -> _Plan:
    notes: list[str] = []
    placed = [d for d in defects if _finite(*d.along_m, *d.across_mm)]
    if len(placed) < len(defects):
        notes.append(f"{len(defects) - len(placed)} defect(s) with no finite position: not drawn")

    along = _along_range(coil, placed, notes)
    kept = [d for d in placed if max(d.along_m) >= along[0] and min(d.along_m) <= along[1]]
    if len(kept) < len(placed):
        notes.append(
            f"{len(placed) - len(kept)} defect(s) outside head..tail "
            f"({along[0]:g}..{along[1]:g} m): not drawn"
        )
    band = _band(coil, kept)
    across = _across_range(band, kept)

    marks = tuple(
        _Mark(
            class_colour(d.class_id),
            d.area_mm2 if math.isfinite(d.area_mm2) else 0.0,
            (min(d.along_m), max(d.along_m)),
            (min(d.across_mm), max(d.across_mm)),
        )
        for d in sorted(kept, key=lambda d: -_area(d))
    )
    merged = _merge(
        (max(along[0], min(g.from_m, g.to_m)), min(along[1], max(g.from_m, g.to_m)))
        for g in gaps
        if _finite(g.from_m, g.to_m)
    )
    if any(not _finite(g.from_m, g.to_m) for g in gaps):
        notes.append("coverage gap(s) with no finite position: not drawn")

    y_ticks = _ticks(across, _PLOT_HEIGHT - 2 * _PAD, 0.45, vertical=True)
    axis_title_width = _text_size("across (mm)", 0.5)[1] + 14
    y_label_width = max((_text_size(text, 0.45)[0] for _, text in y_ticks), default=0)
    left = _MARGIN + axis_title_width + y_label_width + 12
    right = MAP_WIDTH - _MARGIN - 24  # room for half the last tick label
    x_ticks = _ticks(along, right - left - 2 * _PAD, 0.5, vertical=False)

    title = _ascii(
        f"Coil {coil.coil_id}  |  line {coil.line}  |  grade {coil.grade}  |  "
        f"{_num(coil.inspected_m, '.1f')} m inspected  |  {len(defects)} defects"
    )
    gap_m = not_inspected_m(coil, gaps)
    subtitle = _ascii(
        f"head {_num(coil.head_m, '.1f')} m - tail {_num(coil.tail_m, '.1f')} m, "
        f"width {_num(coil.width_mm, '.0f')} mm, {_num(gap_m, '.1f')} m not inspected  "
        f"(along: m from the coil head; across: mm from the reference edge)"
    )
    legend, rows = _legend_items(defects, gaps, gap_m, classes, left, right)
    bottom = _TOP + _PLOT_HEIGHT
    legend_top = bottom + 62
    height = legend_top + rows * _ROW + len(notes) * _NOTE_ROW + _MARGIN
    layout = MapLayout(
        width=MAP_WIDTH,
        height=height,
        plot=(left + _PAD, _TOP + _PAD, right - left - 2 * _PAD, _PLOT_HEIGHT - 2 * _PAD),
        along_m=along,
        across_mm=across,
    )
    strip = None
    if band is not None:
        # Bad head..tail: the band spans the axis drawn (from the defects) instead.
        good = _finite(coil.head_m, coil.tail_m) and coil.tail_m > coil.head_m
        strip = (coil.head_m, coil.tail_m, *band) if good else (*along, *band)
    return _Plan(
        layout,
        title,
        subtitle,
        strip,
        marks,
        merged,
        x_ticks,
        y_ticks,
        legend,
        legend_top,
        tuple(notes),
    )


def _along_range(coil: CoilRecord, placed: Sequence[StripDefect], notes: list[str]) -> Range:
    if _finite(coil.head_m, coil.tail_m) and coil.tail_m > coil.head_m:
        return coil.head_m, coil.tail_m
    ends = [v for d in placed for v in d.along_m]
    source = "its defects" if ends else "nothing (no defects)"
    notes.append(
        f"coil head..tail {_num(coil.head_m, 'g')}..{_num(coil.tail_m, 'g')} m is not a "
        f"length: the axis spans {source}"
    )
    return _widen((min(ends), max(ends)) if ends else (0.0, 1.0), 0.5)


def _band(coil: CoilRecord, kept: Sequence[StripDefect]) -> Range | None:
    """The strip across: 0..width from the reference edge, moved down to the smallest across
    seen when a defect lies below 0."""
    if not (_finite(coil.width_mm) and coil.width_mm > 0):
        return None
    low = min([0.0, *(min(d.across_mm) for d in kept)])
    return low, low + coil.width_mm


def _across_range(band: Range | None, kept: Sequence[StripDefect]) -> Range:
    values = [v for d in kept for v in d.across_mm]
    if band is not None:
        values.extend(band)
    return _widen((min(values), max(values)) if values else (0.0, 1000.0), 1.0)


def _widen(span: Range, half: float) -> Range:
    low, high = span
    return (low - half, high + half) if high - low < 1e-9 else (low, high)


def _merge(intervals: Iterable[Range]) -> tuple[Range, ...]:
    merged: list[list[float]] = []
    for low, high in sorted(i for i in intervals if i[1] >= i[0]):
        if merged and low <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return tuple((low, high) for low, high in merged)


def _ticks(
    span: Range, pixels: int, scale: float, *, vertical: bool
) -> tuple[tuple[float, str], ...]:
    """Ticks every 1, 2 or 5 × 10^k units, the smallest step whose labels do not touch."""
    low, high = span
    length = high - low
    step = 10.0 ** math.floor(math.log10(length * 40 / max(pixels, 1)))
    for _ in range(40):
        for factor in (1, 2, 5):
            candidate = step * factor
            ticks = _tick_values(low, high, candidate)
            sizes = [_text_size(text, scale) for _, text in ticks]
            need = max((h if vertical else w for w, h in sizes), default=0) + 16
            if candidate / length * pixels >= need:
                return ticks
        step *= 10
    return ((low, f"{low:g}"), (high, f"{high:g}"))  # not reached for finite spans


def _tick_values(low: float, high: float, step: float) -> tuple[tuple[float, str], ...]:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    first = math.ceil(low / step - 1e-9)
    last = math.floor(high / step + 1e-9)
    # k × step, not a running sum: no 0.30000000000000004 creeping into the labels.
    return tuple((k * step, f"{k * step:.{decimals}f}") for k in range(first, last + 1))


def _legend_items(
    defects: Sequence[StripDefect],
    gaps: Sequence[CoverageGap],
    gap_m: float,
    classes: Sequence[str],
    left: int,
    right: int,
) -> tuple[tuple[_LegendItem, ...], int]:
    counts = Counter(d.class_id for d in defects)
    names = {i + 1: class_name(classes, i + 1) for i in range(len(classes))}
    for defect in defects:
        names.setdefault(defect.class_id, defect.class_name)
    items = [
        _LegendItem("class", _ascii(f"{names[i]}  {counts[i]}"), class_colour(i))
        for i in sorted(names)
    ]
    items.append(_LegendItem("gap", f"not inspected  {gap_m:.1f} m ({len(gaps)} gaps)"))
    items.append(_LegendItem("text", "marker area grows with defect area:"))
    items.extend(
        _LegendItem("size", f"{area:,.0f} mm2", MUTED, marker_radius(area)) for area in SIZE_KEY_MM2
    )
    items.append(_LegendItem("text", "larger than a marker: drawn to size"))
    placed: list[_LegendItem] = []
    x, row = left, 0
    for item in items:
        width = _legend_width(item)
        if x > left and x + width > right:
            x, row = left, row + 1
        placed.append(_LegendItem(item.kind, item.text, item.colour, item.radius, x, row))
        x += width + 22
    return tuple(placed), row + 1


def _legend_width(item: _LegendItem) -> int:
    swatch = {"class": 20, "gap": 34, "size": 2 * item.radius + 8, "text": 0}[item.kind]
    return swatch + _text_size(item.text, 0.5)[0]


# -- drawing --------------------------------------------------------------------------------


def _draw(plan: _Plan) -> BGRImage:
    layout = plan.layout
    canvas = np.full((layout.height, layout.width, 3), PAPER, np.uint8)
    _draw_titles(canvas, plan)
    _draw_strip(canvas, plan)
    _draw_gaps(canvas, plan)
    _draw_defects(canvas, plan)
    _draw_axes(canvas, plan)
    _draw_legend(canvas, plan)
    return canvas


def _draw_titles(canvas: BGRImage, plan: _Plan) -> None:
    scale = 0.75
    while scale > 0.45 and _text_size(plan.title, scale, 2)[0] > MAP_WIDTH - 2 * _MARGIN:
        scale -= 0.05
    baseline = _MARGIN + 22
    cv2.putText(canvas, plan.title, (_MARGIN, baseline), _FONT, scale, INK, 2, cv2.LINE_AA)
    cv2.putText(canvas, plan.subtitle, (_MARGIN, baseline + 26), _FONT, 0.5, MUTED, 1, cv2.LINE_AA)


def _draw_strip(canvas: BGRImage, plan: _Plan) -> None:
    layout = plan.layout
    x, y, w, h = layout.plot
    frame = (x - _PAD, y - _PAD), (x + w - 1 + _PAD, y + h - 1 + _PAD)
    if plan.strip is not None:
        head, tail, low, high = plan.strip
        cv2.rectangle(canvas, layout.px(head, high), layout.px(tail, low), _STRIP, -1)
    for value, _ in plan.x_ticks:
        tx = layout.px(value, 0.0)[0]
        cv2.line(canvas, (tx, frame[0][1] + 1), (tx, frame[1][1] - 1), _GRID, 1)
    for value, _ in plan.y_ticks:
        ty = layout.px(0.0, value)[1]
        cv2.line(canvas, (frame[0][0] + 1, ty), (frame[1][0] - 1, ty), _GRID, 1)
    cv2.rectangle(canvas, *frame, FRAME, 1)


def _draw_gaps(canvas: BGRImage, plan: _Plan) -> None:
    layout = plan.layout
    _, y, _, h = layout.plot
    label_right = -1
    for low, high in plan.gaps:
        x0, x1 = layout.px(low, 0.0)[0], layout.px(high, 0.0)[0]
        if x1 - x0 < 3:  # a gap thinner than a pixel still shows
            middle = (x0 + x1) // 2
            x0, x1 = middle - 1, middle + 2
        _hatch(canvas, x0, x1 + 1, y - _PAD + 1, y + h + _PAD - 1)
        text = f"not inspected {high - low:.1f} m"
        width, _ = _text_size(text, 0.45)
        start = max(_MARGIN, min((x0 + x1) // 2 - width // 2, MAP_WIDTH - _MARGIN - width))
        if start > label_right + 8:  # labels that would overlap are left to the legend
            cv2.putText(canvas, text, (start, _TOP - 10), _FONT, 0.45, WARN, 1, cv2.LINE_AA)
            label_right = start + width


def _hatch(canvas: BGRImage, x0: int, x1: int, y0: int, y1: int) -> None:
    x0, x1 = max(0, x0), min(canvas.shape[1], x1)
    if x1 <= x0 or y1 <= y0:
        return
    region = canvas[y0:y1, x0:x1]
    region[:] = _GAP_FILL
    rows, cols = np.ogrid[y0:y1, x0:x1]
    # Absolute coordinates: neighbouring gaps' lines meet.
    region[(rows + cols) % _HATCH_EVERY < 2] = HATCH


def _draw_defects(canvas: BGRImage, plan: _Plan) -> None:
    layout = plan.layout
    boxes: list[tuple[BGR, tuple[int, int], tuple[int, int]]] = []
    dots: list[tuple[BGR, tuple[int, int], int]] = []
    for mark in plan.marks:
        radius = marker_radius(mark.area_mm2)
        x0, y1 = layout.px(mark.along_m[0], mark.across_mm[0])
        x1, y0 = layout.px(mark.along_m[1], mark.across_mm[1])
        if x1 - x0 > 2 * radius or y1 - y0 > 2 * radius:
            # Longer (or wider) than its marker: its real extent, thick enough to see.
            (x0, x1), (y0, y1) = _at_least(x0, x1, _MIN_SIDE), _at_least(y0, y1, _MIN_SIDE)
            boxes.append((mark.colour, (x0, y0), (x1, y1)))
        else:
            dots.append((mark.colour, ((x0 + x1) // 2, (y0 + y1) // 2), radius))
    # Boxes filled under the markers and outlined over them: a long scratch stays in sight in
    # a cloud of pits, and the pits inside a large patch stay visible.
    for colour, corner, opposite in boxes:
        cv2.rectangle(canvas, corner, opposite, colour, -1)
    for colour, centre, radius in dots:  # largest first: the small ones end on top
        cv2.circle(canvas, centre, radius, colour, -1, cv2.LINE_AA)
        cv2.circle(canvas, centre, radius, _darker(colour), 1, cv2.LINE_AA)
    for colour, corner, opposite in boxes:
        cv2.rectangle(canvas, corner, opposite, colour, 2)


def _draw_axes(canvas: BGRImage, plan: _Plan) -> None:
    layout = plan.layout
    x, y, w, h = layout.plot
    bottom, left = y + h + _PAD, x - _PAD
    for value, text in plan.x_ticks:
        tx = layout.px(value, 0.0)[0]
        cv2.line(canvas, (tx, bottom), (tx, bottom + 6), INK, 1)
        width, height = _text_size(text, 0.5)
        origin = (tx - width // 2, bottom + 12 + height)
        cv2.putText(canvas, text, origin, _FONT, 0.5, INK, 1, cv2.LINE_AA)
    for value, text in plan.y_ticks:
        ty = layout.px(0.0, value)[1]
        cv2.line(canvas, (left - 6, ty), (left, ty), INK, 1)
        width, height = _text_size(text, 0.45)
        origin = (left - 10 - width, ty + height // 2)
        cv2.putText(canvas, text, origin, _FONT, 0.45, INK, 1, cv2.LINE_AA)
    title = "along (m from the coil head)"
    width, _ = _text_size(title, 0.55)
    origin = (x + w // 2 - width // 2, bottom + 48)
    cv2.putText(canvas, title, origin, _FONT, 0.55, INK, 1, cv2.LINE_AA)
    vertical = _vertical("across (mm)", 0.5)
    top = y + h // 2 - vertical.shape[0] // 2
    canvas[top : top + vertical.shape[0], _MARGIN : _MARGIN + vertical.shape[1]] = vertical


def _draw_legend(canvas: BGRImage, plan: _Plan) -> None:
    for item in plan.legend:
        middle = plan.legend_top + item.row * _ROW + _ROW // 2
        x = item.x
        if item.kind == "class":
            cv2.circle(canvas, (x + 7, middle), 7, item.colour, -1, cv2.LINE_AA)
            cv2.circle(canvas, (x + 7, middle), 7, _darker(item.colour), 1, cv2.LINE_AA)
            x += 20
        elif item.kind == "gap":
            _hatch(canvas, x, x + 26, middle - 8, middle + 9)
            x += 34
        elif item.kind == "size":
            centre = (x + item.radius, middle)
            cv2.circle(canvas, centre, item.radius, _STRIP, -1, cv2.LINE_AA)
            cv2.circle(canvas, centre, item.radius, MUTED, 1, cv2.LINE_AA)
            x += 2 * item.radius + 8
        _, height = _text_size(item.text, 0.5)
        colour = MUTED if item.kind in ("size", "text") else INK
        origin = (x, middle + height // 2)
        cv2.putText(canvas, item.text, origin, _FONT, 0.5, colour, 1, cv2.LINE_AA)
    rows = 1 + max((item.row for item in plan.legend), default=0)
    baseline = plan.legend_top + rows * _ROW + 14
    for note in plan.notes:
        left = plan.layout.plot[0] - _PAD
        cv2.putText(canvas, _ascii(note), (left, baseline), _FONT, 0.5, WARN, 1, cv2.LINE_AA)
        baseline += _NOTE_ROW


def _vertical(text: str, scale: float) -> BGRImage:
    """`text` on paper, turned to read bottom to top."""
    width, height = _text_size(text, scale)
    strip = np.full((height + 10, width + 6, 3), PAPER, np.uint8)
    cv2.putText(strip, text, (3, height + 4), _FONT, scale, INK, 1, cv2.LINE_AA)
    return np.asarray(cv2.rotate(strip, cv2.ROTATE_90_COUNTERCLOCKWISE), np.uint8)


def _text_size(text: str, scale: float, thickness: int = 1) -> tuple[int, int]:
    (width, height), _ = cv2.getTextSize(text, _FONT, scale, thickness)
    return int(width), int(height)


def _darker(colour: BGR) -> BGR:
    b, g, r = colour
    return int(b * 0.55), int(g * 0.55), int(r * 0.55)


def _at_least(low: int, high: int, size: int) -> tuple[int, int]:
    if high - low + 1 >= size:
        return low, high
    middle = (low + high) // 2
    return middle - size // 2, middle - size // 2 + size - 1


def _clamp(value: float) -> int:
    return round(min(_PX_LIMIT, max(-_PX_LIMIT, value)))


# -- the files ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Thumb:
    rank: int
    defect_id: str
    defect: StripDefect | None
    link: str | None  # relative to the report folder, when the crop was copied
    problem: str | None  # why there is no crop


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _copy_crops(
    out_dir: Path, coil: CoilRecord, defects: Sequence[StripDefect], crops_dir: Path | None
) -> list[_Thumb]:
    by_id = {d.defect_id: d for d in defects}
    thumbs = []
    for rank, defect_id in enumerate(coil.largest, start=1):
        defect = by_id.get(defect_id)
        link, problem = None, None
        if defect is None:
            problem = "not among this report's defects"
        elif defect.crop is None:
            problem = "no crop saved"
        elif crops_dir is None:
            problem = f"crop {defect.crop} not copied: no crop directory given"
        else:
            link, problem = _copy_crop(out_dir, crops_dir, defect.crop, rank)
        thumbs.append(_Thumb(rank, defect_id, defect, link, problem))
    return thumbs


def _copy_crop(
    out_dir: Path, crops_dir: Path, crop: str, rank: int
) -> tuple[str | None, str | None]:
    """Copy one crop into ``out_dir/crops``: (its link, None) or (None, what went wrong)."""
    source = (crops_dir / crop).resolve()
    if not source.is_relative_to(crops_dir.resolve()):
        return None, f"crop path {crop} leaves the crop directory {crops_dir}: not copied"
    try:
        data = source.read_bytes()
    except FileNotFoundError:
        return None, f"crop missing: {crop} is not in {crops_dir}"
    except OSError as error:
        return None, f"crop {crop} unreadable: {error.strerror or error}"
    name = f"{rank:02d}-{_UNSAFE.sub('_', Path(crop).name).lstrip('.') or 'crop.jpg'}"
    (out_dir / "crops").mkdir(exist_ok=True)
    _write(out_dir / "crops" / name, data)
    return f"crops/{name}", None


def _write(path: Path, data: bytes) -> Path:
    atomic_write(path, lambda partial: partial.write_bytes(data))
    return path


def _csv(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    return buffer.getvalue().encode()


def _cell(value: object) -> object:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return value


def _defect_row(d: StripDefect) -> tuple[object, ...]:
    return (
        d.defect_id,
        d.line,
        d.coil_id,
        d.class_id,
        d.class_name,
        d.along_m[0],
        d.along_m[1],
        d.across_mm[0],
        d.across_mm[1],
        d.length_mm,
        d.width_mm,
        d.area_mm2,
        d.area_px,
        d.max_score,
        d.mean_score,
        d.first_camera,
        d.first_seq,
        d.last_camera,
        d.last_seq,
        "+".join(d.cameras),
        d.frames,
        d.capture_ns,
        d.crop,
    )


def _gap_row(g: CoverageGap) -> tuple[object, ...]:
    return (g.line, g.coil_id, g.camera, g.from_m, g.to_m, g.length_m, g.frames, g.reason)


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _markdown(
    coil: CoilRecord,
    defects: Sequence[StripDefect],
    gaps: Sequence[CoverageGap],
    thumbs: Sequence[_Thumb],
    notes: Sequence[str],
) -> str:
    gap_m = not_inspected_m(coil, gaps)
    lines = [
        f"# Coil {_md(coil.coil_id)}: grade {_md(coil.grade)}",
        "",
        f"Line {_md(coil.line)}, {_time(coil.started_ns)} to {_time(coil.ended_ns)} "
        f"(closed: {_md(coil.end_reason)}). Head {_num(coil.head_m, '.1f')} m to tail "
        f"{_num(coil.tail_m, '.1f')} m: {_num(coil.length_m, '.1f')} m, "
        f"{_num(coil.inspected_m, '.1f')} m inspected, {_num(gap_m, '.1f')} m not inspected; "
        f"width {_num(coil.width_mm, '.0f')} mm; {coil.frames} frames; {coil.defects} defects.",
        "",
        f"## Grade {_md(coil.grade)}",
        "",
        *([f"- {_md(reason)}" for reason in coil.grade_reasons] or ["No grade rule broken."]),
        "",
        "## Defects by class",
        "",
        "| class | count | area (mm²) | per 100 m | per m² |",
        "|---|--:|--:|--:|--:|",
    ]
    for c in coil.classes:
        lines.append(
            f"| {_md(c.class_name)} | {c.count} | {_num(c.area_mm2, ',.1f')} | "
            f"{_num(c.per_100m, '.2f')} | {_num(c.per_m2, '.3g')} |"
        )
    totals = [sum(getattr(c, key) for c in coil.classes) for key in ("area_mm2", "per_100m")]
    per_m2 = sum(c.per_m2 for c in coil.classes)
    lines += [
        f"| **all** | **{sum(c.count for c in coil.classes)}** | {_num(totals[0], ',.1f')} | "
        f"{_num(totals[1], '.2f')} | {_num(per_m2, '.3g')} |",
        "",
        "## Coverage",
        "",
        f"**{gap_m:.1f} m not inspected**"
        + (
            f" (the camera that missed the most; {len(gaps)} gap(s) below): the strip under a"
            " camera's gap was not seen by that camera."
            if gaps
            else ": every metre from head to tail was seen."
        ),
        "",
    ]
    if gaps:
        lines += [
            "| camera | from (m) | to (m) | length (m) | frames | reason |",
            "|---|--:|--:|--:|--:|---|",
            *(
                f"| {_md(g.camera)} | {_num(g.from_m, '.2f')} | {_num(g.to_m, '.2f')} | "
                f"{_num(g.length_m, '.2f')} | {g.frames} | {_md(g.reason)} |"
                for g in gaps
            ),
            "",
        ]
    anomalies = [f"- {_md(kind)}: {count}" for kind, count in coil.anomalies]
    anomalies += [f"- map: {_md(note)}" for note in notes]
    if coil.defects != len(defects):
        anomalies.append(
            f"- the record counts {coil.defects} defects, this report has {len(defects)}"
        )
    lines += ["## Anomalies", "", *(anomalies or ["None."]), ""]
    lines += ["## Map", "", f"![Defect map of coil {_md(coil.coil_id)}](map.png)", ""]
    lines += ["## Largest defects", ""]
    if thumbs:
        lines += [
            "| # | defect | class | along (m) | across (mm) | area (mm²) | max score | crop |",
            "|--:|---|---|--:|--:|--:|--:|---|",
            *(_thumb_row(t) for t in thumbs),
        ]
    else:
        lines.append("None.")
    lines += [
        "",
        "## Files",
        "",
        "[coil.json](coil.json) (the records), [defects.csv](defects.csv), [gaps.csv](gaps.csv),"
        " [map.png](map.png).",
        "",
    ]
    return "\n".join(lines)


def _thumb_row(t: _Thumb) -> str:
    crop = f"[![{_md(t.defect_id)}]({quote(t.link)})]({quote(t.link)})" if t.link else ""
    crop = crop or _md(t.problem or "")
    d = t.defect
    if d is None:
        return f"| {t.rank} | {_md(t.defect_id)} | | | | | | {crop} |"
    return (
        f"| {t.rank} | {_md(t.defect_id)} | {_md(d.class_name)} | "
        f"{_pair(d.along_m, '.2f')} | {_pair(d.across_mm, '.0f')} | "
        f"{_num(d.area_mm2, ',.0f')} | {_num(d.max_score, '.2f')} | {crop} |"
    )


def _pair(values: tuple[float, float], spec: str) -> str:
    return f"{_num(values[0], spec)}–{_num(values[1], spec)}"


def _md(text: str) -> str:
    """Text for a Markdown table cell or line: pipes escaped, one line."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _time(ns: int) -> str:
    try:
        return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"{ns} ns"


# -- small helpers --------------------------------------------------------------------------


def _finite(*values: float) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def _area(defect: StripDefect) -> float:
    return defect.area_mm2 if math.isfinite(defect.area_mm2) else 0.0


def _num(value: float, spec: str) -> str:
    return format(value, spec) if _finite(value) else "n/a"


def _ascii(text: str) -> str:
    # Hershey fonts draw ASCII only; anything else would come out as '?' glyph soup.
    return text.encode("ascii", "replace").decode("ascii")
