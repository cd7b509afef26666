"""The line page (``/``): line status, cameras, the coil under the cameras, the live defect
feed and the coils that closed; and the same parts as one live update for the event stream.

The page is whole without JavaScript (it reloads itself every few seconds then); with it, the
script swaps in each part from `live_update` as the event stream brings it, and reloads the
open coil's map picture every few seconds.
"""

from __future__ import annotations

import json

from defectd.daemon.outputs.web.coil_pages import coils_table
from defectd.daemon.outputs.web.layout import (
    class_label,
    clock,
    coil_href,
    crop_href,
    esc,
    notice,
    num,
    page,
    seconds,
    table,
)
from defectd.daemon.outputs.web.live import (
    CameraLive,
    CoilSummary,
    FeedItem,
    LiveSnapshot,
    merge_coils,
)
from defectd.daemon.outputs.web.poller import StoreView

STALE_S = 5.0  # a heartbeat older than this: the daemon (or the feed) has stopped
CAMERA_IDLE_S = 5.0  # a camera without a frame for this long is shown as idle
RECENT_COILS = 10
NO_SCRIPT_REFRESH_S = 10
SECTIONS = ("status", "cameras", "coil", "feed", "coils")


def line_page(site: str, live: LiveSnapshot, store: StoreView) -> str:
    """The whole line page."""
    parts = _sections(live, store)
    line = f"line {live.line}" if live.line else "line"
    map_url = _map_url(live)
    source = f' src="{esc(map_url)}"' if map_url else " hidden"
    picture = (
        f'<img id="coil-map" class="map" alt="defect map of the coil under the cameras"'
        f'{source} data-refresh-s="5">'
    )
    body = f"""
<h1>{esc(site)} · {esc(line)}</h1>
<section id="status" class="status">{parts["status"]}</section>
<div class="columns">
<div>
<section class="panel"><h2>Cameras</h2><div id="cameras">{parts["cameras"]}</div></section>
<section class="panel"><h2>Recent coils</h2><div id="coils">{parts["coils"]}</div></section>
</div>
<section class="panel"><h2>Coil under the cameras</h2><div id="coil">{parts["coil"]}</div>
{picture}</section>
</div>
<section class="panel"><h2>Live defects <small>newest first</small></h2>
<div id="feed">{parts["feed"]}</div></section>
<p class="foot" id="live-note">Live: updates as the daemon publishes.</p>
"""
    return page(
        site=site,
        title=line,
        body=body,
        active="line",
        live_nav=True,
        refresh_s=NO_SCRIPT_REFRESH_S,
        scripted=True,
    )


def live_update(live: LiveSnapshot, store: StoreView) -> str:
    """The parts of the line page as one JSON message: ``{"html": {id: html}, "map": url}``."""
    return json.dumps({"html": _sections(live, store), "map": _map_url(live)})


def _sections(live: LiveSnapshot, store: StoreView) -> dict[str, str]:
    return {
        "status": _status(live),
        "cameras": _cameras(live.cameras),
        "coil": _coil(live),
        "feed": _feed(live.feed),
        "coils": _coils(merge_coils(live.closed, store.coils, limit=RECENT_COILS), store),
    }


def _map_url(live: LiveSnapshot) -> str | None:
    coil = live.open_coil
    return None if coil is None else coil_href(coil.coil_id, suffix="/map.png")


def _status(live: LiveSnapshot) -> str:
    beat = live.heartbeat
    if beat is None:
        state, kind, detail = "WAITING", "bad", "no heartbeat from the daemon yet"
    elif beat.age_s > STALE_S:
        state, kind = "NO HEARTBEAT", "bad"
        detail = f"last one {seconds(beat.age_s)} ago: is the daemon running?"
    elif not beat.ready:
        state, kind, detail = "STARTING", "warn", "the engine is loading"
    elif beat.fps > 0:
        state, kind, detail = "INSPECTING", "good", "frames are being processed"
    else:
        state, kind, detail = "READY", "good", "ready, no frames coming in"
    tiles = [_tile("frames/s", num(beat.fps, ",.1f") if beat else "–", "big")]
    if beat is not None:
        tiles += [
            _tile("processed", num(beat.processed, ",d")),
            _tile("dropped", num(beat.dropped_total, ",d"), "warn" if beat.dropped_total else ""),
            _tile("lost", num(beat.lost, ",d"), "warn" if beat.lost else ""),
            _tile("queue", num(beat.queue_depth, ",d")),
            _tile("heartbeat", f"{seconds(beat.age_s)} ago", "bad" if beat.age_s > STALE_S else ""),
        ]
    engine = beat.engine if beat is not None and beat.engine else "not open yet"
    reasons = ""
    if beat is not None and beat.dropped:
        reasons = " · dropped: " + ", ".join(f"{esc(r)} {c:,}" for r, c in beat.dropped)
    uptime = f" · up {seconds(beat.uptime_s)}" if beat is not None else ""
    return (
        f'<div class="state {kind}"><span class="word">{esc(state)}</span>'
        f'<span class="detail">{esc(detail)}</span></div>'
        f'<div class="tiles">{"".join(tiles)}</div>'
        f'<p class="engine">engine: {esc(engine)}{uptime}{reasons}</p>'
    )


def _tile(label: str, value: str, kind: str = "") -> str:
    return (
        f'<div class="tile {esc(kind)}"><span class="value">{esc(value)}</span>'
        f'<span class="label">{esc(label)}</span></div>'
    )


def _cameras(cameras: tuple[CameraLive, ...]) -> str:
    if not cameras:
        return notice("No camera has sent a frame yet.")
    rows = []
    for camera in cameras:
        idle = camera.age_s is None or camera.age_s > CAMERA_IDLE_S
        last = "never" if camera.age_s is None else f"{seconds(camera.age_s)} ago"
        missed = num(camera.missed, ",d")
        rows.append(
            [
                f"<strong>{esc(camera.camera_id)}</strong>",
                f'<span class="big-num{" muted" if idle else ""}">{num(camera.fps, ".1f")}</span>',
                num(camera.frames, ",d"),
                f'<span class="warn-text">{missed}</span>' if camera.missed else missed,
                num(camera.latency_ms, ",.0f"),
                f'<span class="warn-text">{esc(last)}</span>' if idle else esc(last),
                num(camera.defect_frames, ",d"),
            ]
        )
    headers = ["camera", "frames/s", "frames", "missed", "latency ms", "last frame", "defective"]
    return table(headers, rows, numeric={1, 2, 3, 4, 6})


def _coil(live: LiveSnapshot) -> str:
    coil = live.open_coil
    if coil is None:
        return notice("No coil under the cameras: the last frames carried no coil id.")
    extent = coil.extent
    along = "–"
    if extent is not None and extent.head_m is not None and extent.tail_m is not None:
        along = f"{extent.head_m:,.1f}–{extent.tail_m:,.1f} m"
    return (
        f'<p class="coil-id"><a href="{esc(coil_href(coil.coil_id))}">{esc(coil.coil_id)}</a></p>'
        f'<div class="tiles">{_tile("frames", num(coil.frames, ",d"))}'
        f"{_tile('regions found', num(coil.defects, ',d'))}{_tile('along', along)}</div>"
        '<p class="hint">The map shows its strip defects already final; it grows as the '
        "strip passes and gets its grade when the coil closes.</p>"
    )


def _feed(feed: tuple[FeedItem, ...]) -> str:
    if not feed:
        return notice("No defect found yet.")
    rows = []
    for item in feed:
        area = (
            f"{num(item.area_mm2, ',.0f')} mm²"
            if item.area_mm2 is not None
            else f"{item.area_px:,} px"
        )
        where = esc(item.coil_id) if item.coil_id else "–"
        if item.position_m is not None:
            where += f" @ {item.position_m:,.2f} m"
        thumb = "–"
        if item.crop:
            thumb = (
                f'<img class="thumb" loading="lazy" alt="crop of the defect" '
                f'src="{esc(crop_href(item.crop))}">'
            )
        rows.append(
            [
                esc(clock(item.capture_ns)),
                esc(item.camera_id),
                class_label(item.class_id, item.class_name),
                area,
                where,
                num(item.max_score, ".2f"),
                thumb,
            ]
        )
    headers = ["time", "camera", "class", "area", "coil @ along", "score", "crop"]
    return table(headers, rows, numeric={3, 5})


def _coils(coils: tuple[CoilSummary, ...], store: StoreView) -> str:
    problem = notice(store.problem, "warn") if store.problem else ""
    if not coils:
        return problem + notice("No coil has closed yet.")
    more = '<p class="more"><a href="/coils">all coils →</a></p>'
    return problem + coils_table(coils, with_line=False) + more
