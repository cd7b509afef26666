"""The coil pages: ``/coils`` (recent coils, by grade) and ``/coils/<id>`` (one coil's report:
what `defectd coils report` writes, as a page), and the page of a message (no store yet,
no such coil, token needed)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from defectd.daemon.coils.model import CoilRecord, CoverageGap, StripDefect
from defectd.daemon.coils.report import not_inspected_m
from defectd.daemon.outputs.web.layout import (
    class_label,
    coil_href,
    crop_href,
    esc,
    grade_badge,
    notice,
    num,
    page,
    table,
    when,
)
from defectd.daemon.outputs.web.live import CoilSummary


def coils_table(coils: Sequence[CoilSummary], *, with_line: bool) -> str:
    """The coils as a table: id (linked), line when `with_line`, grade, end, metres,
    defects, metres not seen and the grade's reasons."""
    rows = []
    for c in coils:
        line = [esc(c.line)] if with_line else []
        rows.append(
            [
                f'<a href="{esc(coil_href(c.coil_id, c.line))}">{esc(c.coil_id)}</a>',
                *line,
                grade_badge(c.grade),
                esc(when(c.ended_ns)),
                num(c.inspected_m, ",.1f"),
                num(c.defects, ",d"),
                num(c.gap_m, ",.1f"),
                esc("; ".join(c.grade_reasons)),
            ]
        )
    headers = ["coil", *(["line"] if with_line else []), "grade", "ended", "m", "defects"]
    first = len(headers) - 2  # m, defects, not seen m are numbers
    headers += ["not seen m", "why"]
    return table(headers, rows, numeric={first, first + 1, first + 2})


def coils_page(
    site: str,
    coils: Sequence[CoilSummary],
    *,
    grade: str | None,
    grades: Sequence[str],
    problem: str | None,
    live_nav: bool,
) -> str:
    """The recent coils, newest first, optionally of one grade."""
    options = ['<option value="">every grade</option>']
    for choice in sorted({*grades, *([grade] if grade else [])}):
        selected = " selected" if choice == grade else ""
        options.append(f'<option value="{esc(choice)}"{selected}>{esc(choice)}</option>')
    form = (
        '<form class="filter" method="get" action="/coils"><label>grade '
        f'<select name="grade">{"".join(options)}</select></label>'
        '<button type="submit">show</button></form>'
    )
    if problem:
        listing = notice(problem, "warn")
    elif not coils:
        listing = notice(f"No coil of grade {grade} in the store." if grade else "No coil yet.")
    else:
        listing = coils_table(coils, with_line=True)
    title = f"Coils of grade {grade}" if grade else "Recent coils"
    body = f'<h1>{esc(title)}</h1>\n{form}\n<section class="panel">{listing}</section>'
    return page(site=site, title=title, body=body, active="coils", live_nav=live_nav)


def coil_page(
    site: str,
    coil: CoilRecord,
    defects: Sequence[StripDefect],
    gaps: Sequence[CoverageGap],
    *,
    has_crop: Callable[[str], bool],
    live_nav: bool,
) -> str:
    """One closed coil's report page; `has_crop(path)`: whether a crop file is there."""
    gap_m = not_inspected_m(coil, gaps)
    facts = (
        f"Line {esc(coil.line)}, {esc(when(coil.started_ns))} to {esc(when(coil.ended_ns))} "
        f"(closed: {esc(coil.end_reason)}). Head {num(coil.head_m)} m to tail "
        f"{num(coil.tail_m)} m: {num(coil.length_m)} m, {num(coil.inspected_m)} m inspected, "
        f"{num(gap_m)} m not inspected; width {num(coil.width_mm, ',.0f')} mm; "
        f"{coil.frames:,} frames; {coil.defects:,} defects."
    )
    reasons = "".join(f"<li>{esc(r)}</li>" for r in coil.grade_reasons)
    grade = f'<ul class="reasons">{reasons}</ul>' if reasons else "<p>No grade rule broken.</p>"
    body = [
        f"<h1>Coil {esc(coil.coil_id)} {grade_badge(coil.grade, big=True)}</h1>",
        f'<p class="facts">{facts}</p>',
        f'<section class="panel"><h2>Grade {esc(coil.grade)}</h2>{grade}</section>',
        '<section class="panel"><h2>Map</h2>'
        f'<img class="map" alt="defect map of coil {esc(coil.coil_id)}" '
        f'src="{esc(coil_href(coil.coil_id, coil.line, "/map.png"))}"></section>',
        f'<section class="panel"><h2>Defects by class</h2>{_classes(coil)}</section>',
        f'<section class="panel"><h2>Coverage</h2>{_coverage(gap_m, gaps)}</section>',
        f'<section class="panel"><h2>Anomalies</h2>{_anomalies(coil, defects)}</section>',
        '<section class="panel"><h2>Largest defects</h2>'
        f"{_largest(coil, defects, has_crop)}</section>",
    ]
    title = f"Coil {coil.coil_id}"
    return page(site=site, title=title, body="\n".join(body), active="coils", live_nav=live_nav)


def open_coil_page(site: str, coil_id: str, *, live_nav: bool) -> str:
    """A coil still under the cameras: its map so far; the report comes when it closes."""
    body = (
        f"<h1>Coil {esc(coil_id)} {grade_badge('open', big=True)}</h1>"
        + notice(
            "This coil is under the cameras now: its map shows the strip defects already "
            "final and grows as the strip passes. Its grade and report come when it closes."
        )
        + '<section class="panel"><img id="coil-map" class="map" data-refresh-s="5" '
        f'alt="defect map of coil {esc(coil_id)} so far" '
        f'src="{esc(coil_href(coil_id, suffix="/map.png"))}"></section>'
    )
    return page(
        site=site,
        title=f"Coil {coil_id}",
        body=body,
        active="coils",
        live_nav=live_nav,
        refresh_s=10,
        scripted=True,
    )


def message_page(site: str, title: str, text: str, *, live_nav: bool, kind: str = "warn") -> str:
    """A page that only says something: no store yet, no such coil, a token needed."""
    body = f"<h1>{esc(title)}</h1>\n{notice(text, kind)}"
    return page(site=site, title=title, body=body, active="", live_nav=live_nav)


def _classes(coil: CoilRecord) -> str:
    if not coil.classes:
        return notice("The record has no class counts.")
    rows = [
        [
            esc(c.class_name),
            num(c.count, ",d"),
            num(c.area_mm2, ",.1f"),
            num(c.per_100m, ",.2f"),
            num(c.per_m2, ".3g"),
        ]
        for c in coil.classes
    ]
    rows.append(
        [
            "<strong>all</strong>",
            f"<strong>{sum(c.count for c in coil.classes):,}</strong>",
            num(sum(c.area_mm2 for c in coil.classes), ",.1f"),
            num(sum(c.per_100m for c in coil.classes), ",.2f"),
            num(sum(c.per_m2 for c in coil.classes), ".3g"),
        ]
    )
    headers = ["class", "count", "area mm²", "per 100 m", "per m²"]
    return table(headers, rows, numeric={1, 2, 3, 4})


def _coverage(gap_m: float, gaps: Sequence[CoverageGap]) -> str:
    if not gaps:
        return (
            f"<p><strong>{gap_m:.1f} m not inspected</strong>: every metre from head to tail "
            "was seen.</p>"
        )
    text = (
        f"<p><strong>{gap_m:.1f} m not inspected</strong> (the camera that missed the most; "
        f"{len(gaps)} gap(s) below): the strip under a camera's gap was not seen by that "
        "camera.</p>"
    )
    rows = [
        [
            esc(g.camera),
            num(g.from_m, ",.2f"),
            num(g.to_m, ",.2f"),
            num(g.length_m, ",.2f"),
            num(g.frames, ",d"),
            esc(g.reason),
        ]
        for g in gaps
    ]
    headers = ["camera", "from m", "to m", "length m", "frames", "reason"]
    return text + table(headers, rows, numeric={1, 2, 3, 4})


def _anomalies(coil: CoilRecord, defects: Sequence[StripDefect]) -> str:
    items = [f"<li>{esc(kind)}: {count:,}</li>" for kind, count in coil.anomalies]
    if coil.defects != len(defects):
        items.append(
            f"<li>the record counts {coil.defects:,} defects, the store holds {len(defects):,}</li>"
        )
    return f"<ul>{''.join(items)}</ul>" if items else "<p>None.</p>"


def _largest(
    coil: CoilRecord, defects: Sequence[StripDefect], has_crop: Callable[[str], bool]
) -> str:
    if not coil.largest:
        return "<p>None.</p>"
    by_id = {d.defect_id: d for d in defects}
    rows = []
    for rank, defect_id in enumerate(coil.largest, start=1):
        defect = by_id.get(defect_id)
        if defect is None:
            rows.append([str(rank), esc(defect_id), "", "", "", "", "", "not in the store"])
            continue
        if defect.crop is None:
            crop = "no crop saved"
        elif not has_crop(defect.crop):
            crop = esc(f"crop missing: {defect.crop}")
        else:
            href = esc(crop_href(defect.crop))
            crop = (
                f'<a href="{href}"><img class="thumb" loading="lazy" '
                f'alt="crop of defect {rank}" src="{href}"></a>'
            )
        rows.append(
            [
                str(rank),
                f'<span class="defect-id">{esc(defect_id)}</span>',
                class_label(defect.class_id, defect.class_name),
                f"{num(defect.along_m[0], ',.2f')}–{num(defect.along_m[1], ',.2f')}",
                f"{num(defect.across_mm[0], ',.0f')}–{num(defect.across_mm[1], ',.0f')}",
                num(defect.area_mm2, ",.0f"),
                num(defect.max_score, ".2f"),
                crop,
            ]
        )
    headers = ["#", "defect", "class", "along m", "across mm", "area mm²", "max score", "crop"]
    return table(headers, rows, numeric={0, 3, 4, 5, 6})
