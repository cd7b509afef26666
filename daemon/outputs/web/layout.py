"""The page shell and the small pieces every page uses; everything shown is escaped here.

`page` wraps a body in the document (stylesheet and script from ``/static``, no external
resource, no inline script, so the Content-Security-Policy can forbid both); `esc` escapes
any text for HTML; the formatters turn numbers, times and grades into what an operator
reads from a distance. Grades get a colour by name (the web view does not know the plant's
grade list): A/ok/prime green, reject/scrap/hold red, "open" blue, any other amber.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Sequence
from urllib.parse import quote, urlencode

from defectd.engines.classes import MAX_CLASSES

_GOOD = ("a", "ok", "good", "prime", "pass", "1")
_BAD = ("reject", "scrap", "hold", "fail", "nok")


def esc(value: object) -> str:
    """`value` as HTML text (quotes too, so it is safe in an attribute)."""
    return html.escape(str(value), quote=True)


def page(
    *,
    site: str,
    title: str,
    body: str,
    active: str,
    live_nav: bool,
    refresh_s: int | None = None,
    scripted: bool = False,
) -> str:
    """The whole document. `active`: the nav entry to mark ("line", "coils"); `live_nav`:
    whether the line page exists (a live feed); `refresh_s`: reload without JavaScript that
    often; `scripted`: load the live script (/static/app.js)."""
    nav = []
    if live_nav:
        nav.append(_nav_link("/", "Line", active == "line"))
    nav.append(_nav_link("/coils", "Coils", active == "coils"))
    head = [
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)} · {esc(site)}</title>",
        '<link rel="icon" href="/static/icon.svg" type="image/svg+xml">',
        '<link rel="stylesheet" href="/static/app.css">',
    ]
    if scripted:
        head.append('<script src="/static/app.js" defer></script>')
    if refresh_s is not None:
        head.append(f'<noscript><meta http-equiv="refresh" content="{int(refresh_s)}"></noscript>')
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n'
        + "\n".join(head)
        + "\n</head>\n<body>\n"
        + f'<header class="top"><span class="site">{esc(site)}</span>'
        + f'<nav>{"".join(nav)}</nav><span class="readonly">read-only</span></header>\n'
        + f"<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _nav_link(href: str, text: str, active: bool) -> str:
    current = ' aria-current="page"' if active else ""
    return f'<a href="{esc(href)}"{current}>{esc(text)}</a>'


def notice(text: str, kind: str = "info") -> str:
    """A boxed message: ``info``, ``warn`` or ``bad``."""
    return f'<p class="notice {esc(kind)}">{esc(text)}</p>'


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, numeric: set[int]) -> str:
    """A table of cells already made HTML (escape them first); `numeric`: right-aligned
    columns, by index."""

    def cell(tag: str, index: int, content: str) -> str:
        align = ' class="num"' if index in numeric else ""
        return f"<{tag}{align}>{content}</{tag}>"

    head = "".join(cell("th", i, esc(h)) for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def num(value: float | int | None, spec: str = ",.1f") -> str:
    """A number, or "–" when there is none (None, NaN)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return format(value, spec)


def seconds(value: float | None) -> str:
    """An age: "0.4 s", "12 s", "3 min", "2 h"."""
    if value is None:
        return "–"
    if value < 10:
        return f"{value:.1f} s"
    if value < 120:
        return f"{value:.0f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.0f} h"


def clock(ns: int) -> str:
    """HH:MM:SS of a Unix time in ns, local time."""
    try:
        return dt.datetime.fromtimestamp(ns / 1e9).astimezone().strftime("%H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return "–"


def when(ns: int) -> str:
    """Date and time of a Unix time in ns, local time."""
    try:
        return dt.datetime.fromtimestamp(ns / 1e9).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return "–"


def grade_kind(grade: str) -> str:
    """The colour class of a grade (module docstring)."""
    word = grade.strip().lower()
    if word == "open":
        return "info"
    if word in _GOOD:
        return "good"
    if any(bad in word for bad in _BAD):
        return "bad"
    return "warn"


def grade_badge(grade: str, big: bool = False) -> str:
    size = " big" if big else ""
    return f'<span class="badge {grade_kind(grade)}{size}">{esc(grade)}</span>'


def class_label(class_id: int, name: str) -> str:
    """The class name with its colour dot (the colour every defectd picture gives it)."""
    colour = f" c{class_id}" if 1 <= class_id <= MAX_CLASSES else ""  # assets.CSS has them
    return f'<span class="dot{colour}"></span>{esc(name)}'


def coil_href(coil_id: str, line: str | None = None, suffix: str = "") -> str:
    """The address of a coil's page (or of its ``suffix``, like ``/map.png``)."""
    href = f"/coils/{quote(coil_id, safe='')}{suffix}"
    return f"{href}?{urlencode({'line': line})}" if line else href


def crop_href(crop: str) -> str:
    """The address of a stored crop (its path relative to the crop directory)."""
    return "/crops/" + quote(crop, safe="/")
