"""The web view's stylesheet, script and icon, as strings served from ``/static``.

No build step and nothing from the Internet (the inspection PC has none): plain CSS, a small
script with no library, an SVG icon. Class colours come from `engines.classes` (the colour of
each class in every defectd picture) as ``.c1`` … ``.c64``, so pages colour a class without an
inline style (the Content-Security-Policy allows none).
"""

from __future__ import annotations

from defectd.engines.classes import MAX_CLASSES, class_colour


def _class_rules() -> str:
    rules = []
    for class_id in range(1, MAX_CLASSES + 1):
        blue, green, red = class_colour(class_id)
        rules.append(f".c{class_id}{{background:#{red:02x}{green:02x}{blue:02x}}}")
    return "\n".join(rules)


_CSS = """
:root {
  --bg: #11161c; --panel: #1b232c; --line: #2c3844; --ink: #e8edf2; --muted: #93a1ae;
  --good: #2fb36b; --warn: #f0a202; --bad: #e5484d; --info: #3d8bfd;
  font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif;
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); font-size: 18px; }
a { color: #8cc4ff; }
header.top { display: flex; align-items: center; gap: 24px; padding: 10px 24px;
  background: #0b0f13; border-bottom: 1px solid var(--line); }
header.top .site { font-weight: bold; font-size: 20px; }
header.top nav a { margin-right: 18px; text-decoration: none; font-size: 20px; }
header.top nav a[aria-current="page"] { border-bottom: 3px solid var(--info); }
header.top .readonly { margin-left: auto; color: var(--muted); font-size: 14px; }
main { padding: 16px 24px 32px; }
h1 { font-size: 30px; margin: 4px 0 16px; }
h2 { font-size: 20px; margin: 0 0 10px; color: var(--muted); font-weight: normal; }
h2 small { font-size: 14px; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 8px;
  padding: 14px 16px; margin-bottom: 16px; overflow-x: auto; }
.columns { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 16px; }
@media (max-width: 1100px) { .columns { grid-template-columns: minmax(0, 1fr); } }
.status { display: flex; flex-wrap: wrap; align-items: stretch; gap: 16px; margin-bottom: 16px; }
.state { border-radius: 8px; padding: 12px 22px; min-width: 300px; display: flex;
  flex-direction: column; justify-content: center; }
.state .word { font-size: 40px; font-weight: bold; letter-spacing: 1px; }
.state .detail { font-size: 16px; }
.state.good { background: var(--good); color: #06210f; }
.state.warn { background: var(--warn); color: #2b1d00; }
.state.bad { background: var(--bad); color: #fff; }
.tiles { display: flex; flex-wrap: wrap; gap: 12px; }
.tile { background: var(--panel); border: 1px solid var(--line); border-radius: 8px;
  padding: 8px 16px; min-width: 120px; display: flex; flex-direction: column; }
.tile .value { font-size: 34px; font-weight: bold; font-variant-numeric: tabular-nums; }
.tile .label { color: var(--muted); font-size: 14px; }
.tile.big .value { font-size: 48px; }
.tile.warn .value { color: var(--warn); }
.tile.bad .value { color: var(--bad); }
.engine { flex-basis: 100%; margin: 0; color: var(--muted); font-size: 15px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: middle; }
th { color: var(--muted); font-weight: normal; font-size: 15px; }
td.num, th.num { text-align: right; }
.big-num { font-size: 28px; font-weight: bold; }
.muted { color: var(--muted); }
.warn-text { color: var(--warn); font-weight: bold; }
td a, td .badge, td:first-child { white-space: nowrap; }
.badge { display: inline-block; padding: 2px 12px; border-radius: 6px; font-weight: bold; }
.badge.big { font-size: 28px; padding: 2px 18px; vertical-align: middle; }
.badge.good { background: var(--good); color: #06210f; }
.badge.warn { background: var(--warn); color: #2b1d00; }
.badge.bad { background: var(--bad); color: #fff; }
.badge.info { background: var(--info); color: #fff; }
.dot { display: inline-block; width: 14px; height: 14px; border-radius: 50%;
  margin-right: 8px; vertical-align: -1px; background: #888; border: 1px solid #0006; }
.thumb { max-height: 64px; max-width: 160px; display: block; border: 1px solid var(--line); }
.map { width: 100%; height: auto; margin-top: 10px; border-radius: 4px; background: #fff; }
.map[hidden] { display: none; }
.coil-id { font-size: 36px; font-weight: bold; margin: 0 0 10px; }
.coil-id a { color: var(--ink); }
.notice { border-left: 6px solid var(--info); background: #1d2a3a; padding: 10px 14px;
  margin: 0 0 10px; }
.notice.warn { border-color: var(--warn); background: #3a2f17; }
.notice.bad { border-color: var(--bad); background: #3d1d1f; }
.hint, .foot, .facts { color: var(--muted); font-size: 15px; }
.facts { font-size: 17px; color: var(--ink); }
.reasons li { font-size: 20px; }
.defect-id { font-family: "DejaVu Sans Mono", monospace; font-size: 13px; }
.filter { margin-bottom: 14px; }
.filter select, .filter button { font-size: 18px; padding: 4px 10px; }
.more { margin: 8px 0 0; }
.offline { color: var(--warn); }
"""

CSS = _CSS + _class_rules() + "\n"

JS = """\
"use strict";
// The line page, live: each server-sent "update" replaces the page's parts (HTML made and
// escaped by the server); the coil map picture is reloaded every few seconds.
(function () {
  var mapUrl = null;

  function setMap(img, url) {
    if (url === mapUrl) { return; }
    mapUrl = url;
    if (url) {
      img.src = url;
      img.hidden = false;
    } else {
      img.hidden = true;
      img.removeAttribute("src");
    }
  }

  function refreshMap(img) {
    if (img.hidden || !img.getAttribute("src")) { return; }
    var next = new URL(img.src, window.location.href);
    next.searchParams.set("v", String(Date.now()));
    img.src = next.toString();
  }

  function note(text, offline) {
    var el = document.getElementById("live-note");
    if (el) {
      el.textContent = text;
      el.className = offline ? "foot offline" : "foot";
    }
  }

  function apply(update) {
    var parts = update.html || {};
    Object.keys(parts).forEach(function (id) {
      var el = document.getElementById(id);
      if (el) { el.innerHTML = parts[id]; }
    });
    var img = document.getElementById("coil-map");
    if (img && Object.prototype.hasOwnProperty.call(update, "map")) { setMap(img, update.map); }
  }

  function start() {
    var img = document.getElementById("coil-map");
    if (img) {
      mapUrl = img.getAttribute("src");
      var every = Number(img.getAttribute("data-refresh-s") || "0");
      if (every > 0) {
        window.setInterval(function () { refreshMap(img); }, every * 1000);
      }
    }
    if (!document.getElementById("feed") || !window.EventSource) { return; }
    var source = new EventSource("/events");
    source.addEventListener("update", function (event) {
      apply(JSON.parse(event.data));
      note("Live: updated " + new Date().toLocaleTimeString(), false);
    });
    source.addEventListener("error", function () {
      note("Connection to the web view lost: retrying…", true);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
"""

ICON = """\
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">
<rect width="32" height="32" rx="6" fill="#1b232c"/>
<rect x="4" y="11" width="24" height="10" fill="#93a1ae"/>
<circle cx="12" cy="16" r="3" fill="#e5484d"/>
<rect x="18" y="14" width="7" height="3" fill="#f0a202"/>
</svg>
"""

STATIC: dict[str, tuple[str, str]] = {
    "app.css": ("text/css; charset=utf-8", CSS),
    "app.js": ("text/javascript; charset=utf-8", JS),
    "icon.svg": ("image/svg+xml", ICON),
}
