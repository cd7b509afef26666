"""Build deploy/grafana/defectd.json, the Grafana dashboard for defectd.

    python deploy/grafana/build_dashboard.py          # rewrite defectd.json
    python deploy/grafana/build_dashboard.py --check  # exit 1 if defectd.json is out of date

The JSON is generated so that panel ids and grid positions stay consistent when panels are
added or moved; tests/deploy/test_grafana_dashboard.py checks that the checked-in file is this
script's output, and the Prometheus integration test evaluates every query in it.

The dashboard reads the raw metrics (docs/metrics.md), so it works without the recording
rules; only the latency budget line comes from a rule (defectd:latency_budget_seconds).
`line` is a target label from the scrape config (deploy/prometheus/scrape.yml).

Longer than 400 lines because most of it is the dashboard itself: one short call per panel,
in the order the rows appear, so a panel and its query are read in one place.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).resolve().with_name("defectd.json")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
WIDTH = 24  # Grafana's grid is 24 columns wide

# Selectors every query starts from: the variables restrict by line and, where the metric has
# one, by camera.
LINE = 'line=~"$line"'
CAMERA = 'line=~"$line", camera=~"$camera"'


@dataclass(frozen=True)
class Query:
    """One PromQL target of a panel."""

    expr: str
    legend: str = ""
    instant: bool = False


@dataclass
class Panel:
    """A panel before layout: kind, title, queries and the options of its kind."""

    kind: str
    title: str
    description: str
    queries: tuple[Query, ...]
    width: int = 12
    height: int = 8
    unit: str = "short"
    options: dict[str, Any] = field(default_factory=dict)
    field_config: dict[str, Any] = field(default_factory=dict)
    transformations: list[dict[str, Any]] = field(default_factory=list)
    overrides: list[dict[str, Any]] = field(default_factory=list)


def timeseries(
    title: str, description: str, *queries: Query, unit: str = "short", stacked: bool = False
) -> Panel:
    custom: dict[str, Any] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10}
    if stacked:
        custom |= {"stacking": {"mode": "normal", "group": "A"}, "fillOpacity": 40}
    return Panel(
        "timeseries",
        title,
        description,
        queries,
        unit=unit,
        options={
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        field_config={"custom": custom},
    )


def up_down_stat(title: str, description: str, query: Query, up: str, down: str) -> Panel:
    """A stat panel showing 1 as `up` (green) and 0 as `down` (red)."""
    return Panel(
        "stat",
        title,
        description,
        (query,),
        width=6,
        height=4,
        options={
            "colorMode": "background",
            "graphMode": "none",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "value_and_name",
        },
        field_config={
            "mappings": [
                {
                    "type": "value",
                    "options": {
                        "0": {"text": down, "color": "red", "index": 0},
                        "1": {"text": up, "color": "green", "index": 1},
                    },
                }
            ],
            "thresholds": {
                "mode": "absolute",
                "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}],
            },
        },
    )


def rate(metric: str, selector: str) -> str:
    return f"rate({metric}{{{selector}}}[$__rate_interval])"


def quantile(q: float, metric: str, by: str = "") -> str:
    labels = ", ".join(("le", by)) if by else "le"
    return f"histogram_quantile({q}, sum by ({labels}) ({rate(metric, LINE)}))"


def labels_table(title: str, description: str, expr: str, width: int) -> Panel:
    """A table of an info metric's labels, one row per series (value and time hidden)."""
    return Panel(
        "table",
        title,
        description,
        (Query(expr, instant=True),),
        width=width,
        height=5,
        options={"showHeader": True, "cellHeight": "sm"},
        transformations=[
            {"id": "labelsToFields", "options": {"mode": "columns"}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True, "Value": True, "__name__": True},
                    "indexByName": {},
                    "renameByName": {},
                },
            },
        ],
    )


def with_budget_line(panel: Panel) -> Panel:
    """`panel` with its series named "budget" drawn as a dashed red line."""
    panel.overrides.append(
        {
            "matcher": {"id": "byName", "options": "budget"},
            "properties": [
                {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}},
            ],
        }
    )
    return panel


ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    (
        "Health",
        (
            up_down_stat(
                "Scrape target up",
                "Prometheus reaches /metrics on each inspection PC (`up`). DOWN: the daemon is "
                "not running, hung, or unreachable; alert DefectdTargetDown.",
                Query(f'up{{job="defectd", {LINE}}}', "{{instance}}"),
                "UP",
                "DOWN",
            ),
            up_down_stat(
                "Ready",
                "`defectd_ready`: 1 when /readyz says ready (engine warmed up, every stage "
                "running). NOT READY while starting or while a crashed worker is restarted; "
                "alert DefectdNotReady after 30 s.",
                Query(f"defectd_ready{{{LINE}}}", "{{instance}}"),
                "READY",
                "NOT READY",
            ),
            Panel(
                "stat",
                "Worker restarts (time range)",
                "Children the supervisor restarted after they died, by kind, over the "
                "dashboard's time range. Each one drops the frames it held (worker_crash); "
                "alerts DefectdWorkerRestarted and DefectdWorkerCrashLooping.",
                (
                    Query(
                        "sum by (kind) (increase(defectd_worker_restarts_total"
                        f"{{{LINE}}}[$__range]))",
                        "{{kind}}",
                        instant=True,
                    ),
                ),
                width=12,
                height=4,
                options={
                    "colorMode": "value",
                    "graphMode": "none",
                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "textMode": "value_and_name",
                },
                field_config={
                    "decimals": 0,
                    "thresholds": {
                        "mode": "absolute",
                        "steps": [
                            {"color": "green", "value": None},
                            {"color": "orange", "value": 1},
                            {"color": "red", "value": 4},
                        ],
                    },
                },
            ),
            labels_table(
                "Engine",
                "What each PC runs (`defectd_engine_info` labels): backend (tensorrt, "
                "onnxruntime, torch, null), device, precision, max batch, model name and "
                "version, and the backend runtime's version.",
                f"defectd_engine_info{{{LINE}}} == 1",
                width=24,
            ),
        ),
    ),
    (
        "Frames",
        (
            timeseries(
                "Frames per second per camera",
                "Frames that went all the way through the pipeline (solid) and frames read from "
                "the camera's socket, per camera. The two differ by the drops.",
                Query(
                    f"sum by (instance, camera) ({rate('defectd_frames_processed_total', CAMERA)})",
                    "processed {{camera}} ({{instance}})",
                ),
                Query(
                    f"sum by (instance, camera) ({rate('defectd_frames_received_total', CAMERA)})",
                    "received {{camera}} ({{instance}})",
                ),
                unit="fps",
            ),
            timeseries(
                "Seconds since the last frame",
                "Per camera; above 10 s fires DefectdCameraSilent. A camera that never sent "
                "counts from the daemon's start.",
                Query(
                    f"time() - max by (instance, camera) "
                    f"(defectd_last_frame_timestamp_seconds{{{CAMERA}}}) "
                    "and on (instance, camera) "
                    f"max by (instance, camera) (defectd_camera_configured{{{CAMERA}}}) == 1",
                    "{{camera}} ({{instance}})",
                ),
                unit="s",
            ),
            timeseries(
                "Drops by reason",
                "Frames given up per second, stacked by reason: protocol rejects "
                "(malformed_*, unknown_*, size_mismatch, too_large, undecodable, "
                "wrong_frame_size) and pipeline drops (queue_full, worker_crash, bad_frame, "
                "engine_error, timeout, shutdown). Camera (unknown): messages naming no "
                "configured camera.",
                Query(
                    f"sum by (reason) ({rate('defectd_frames_dropped_total', CAMERA)})",
                    "{{reason}}",
                ),
                unit="fps",
                stacked=True,
            ),
            timeseries(
                "Dropped share per camera",
                "Dropped / received per camera; above 1% for a minute fires DefectdFramesDropped.",
                Query(
                    f"sum by (instance, camera) ({rate('defectd_frames_dropped_total', CAMERA)})"
                    f" / sum by (instance, camera) "
                    f"({rate('defectd_frames_received_total', CAMERA)})",
                    "{{camera}} ({{instance}})",
                ),
                unit="percentunit",
            ),
            timeseries(
                "Lost in transport",
                "Frames that never arrived (gaps in each camera's seq: network, HWM overflow), "
                "frames out of order, and camera numbering restarts, per interval.",
                Query(
                    "sum by (instance, camera) (increase(defectd_frames_lost_total"
                    f"{{{CAMERA}}}[$__rate_interval]))",
                    "lost {{camera}} ({{instance}})",
                ),
                Query(
                    "sum by (instance, camera) (increase(defectd_frames_out_of_order_total"
                    f"{{{CAMERA}}}[$__rate_interval]))",
                    "out of order {{camera}} ({{instance}})",
                ),
                Query(
                    "sum by (instance, camera) (increase(defectd_camera_resets_total"
                    f"{{{CAMERA}}}[$__rate_interval]))",
                    "resets {{camera}} ({{instance}})",
                ),
            ),
            timeseries(
                "Slot usage",
                "Shared-memory frame slots in use / slots in the pool. Near 100%: the next "
                "frame drops the oldest (drop_oldest) or waits (block).",
                Query(
                    f"max by (instance) (defectd_slots_in_use{{{LINE}}}) "
                    f"/ max by (instance) (defectd_slots_capacity{{{LINE}}})",
                    "{{instance}}",
                ),
                unit="percentunit",
            ),
        ),
    ),
    (
        "Latency and batching",
        (
            with_budget_line(
                timeseries(
                    "Latency p50 / p99",
                    "Frame latency at publish. capture_to_publish: from the camera's capture "
                    "time (camera clock, end to end); receive_to_publish: from receipt by defectd. "
                    "The dashed budget line comes from the recording rule "
                    "defectd:latency_budget_seconds; p99 end to end above it for a minute fires "
                    "DefectdLatencyOverBudget.",
                    Query(quantile(0.5, "defectd_latency_seconds_bucket", "kind"), "p50 {{kind}}"),
                    Query(quantile(0.99, "defectd_latency_seconds_bucket", "kind"), "p99 {{kind}}"),
                    Query("max(defectd:latency_budget_seconds)", "budget"),
                    unit="s",
                )
            ),
            timeseries(
                "Inference time per batch p50 / p99",
                "Duration of one engine call (a whole batch).",
                Query(quantile(0.5, "defectd_inference_seconds_bucket"), "p50"),
                Query(quantile(0.99, "defectd_inference_seconds_bucket"), "p99"),
                unit="s",
            ),
            timeseries(
                "Batch size",
                "Frames per engine call: mean and p90. A low mean with a growing queue "
                "means batching.max_wait_ms is too short.",
                Query(
                    f"sum by (instance) ({rate('defectd_batch_size_sum', LINE)}) "
                    f"/ sum by (instance) ({rate('defectd_batch_size_count', LINE)})",
                    "mean ({{instance}})",
                ),
                Query(quantile(0.9, "defectd_batch_size_bucket", "instance"), "p90 ({{instance}})"),
            ),
            timeseries(
                "Queue depth",
                "Items waiting in each inter-process queue, summed over the processes that "
                "hold them.",
                Query(f"sum by (instance, queue) (defectd_queue_depth{{{LINE}}})", "{{queue}}"),
            ),
        ),
    ),
    (
        "Defects",
        (
            timeseries(
                "Defects per class per minute",
                "Defect events published per minute, by class, over the selected cameras. A "
                "class jumping far above its usual level fires DefectdDefectRateSpike.",
                Query(
                    f"sum by (class_name) ({rate('defectd_defects_total', CAMERA)}) * 60",
                    "{{class_name}}",
                ),
                unit="short",
                stacked=True,
            ),
            Panel(
                "bargauge",
                "Defects by class and camera (time range)",
                "Defect events over the dashboard's time range.",
                (
                    Query(
                        "sum by (class_name, camera) (increase(defectd_defects_total"
                        f"{{{CAMERA}}}[$__range]))",
                        "{{class_name}} {{camera}}",
                        instant=True,
                    ),
                ),
                options={
                    "displayMode": "gradient",
                    "orientation": "horizontal",
                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "showUnfilled": True,
                },
                field_config={"decimals": 0},
            ),
        ),
    ),
    (
        "Live changes and shadow runs",
        (
            timeseries(
                "Reloads and model swaps",
                "Config reloads (defectd reload, SIGHUP) by outcome and model swaps by outcome "
                "and reason, per 15 minutes. A refused reload keeps the running config "
                "(DefectdReloadRefused); a failed swap keeps the old model serving "
                "(DefectdModelSwapFailed).",
                Query(
                    f"sum by (outcome) (increase(defectd_reloads_total{{{LINE}}}[15m]))",
                    "reload {{outcome}}",
                ),
                Query(
                    "sum by (outcome, reason) (increase(defectd_model_swaps_total"
                    f"{{{LINE}}}[15m]))",
                    "swap {{outcome}} {{reason}}",
                ),
                unit="short",
            ),
            timeseries(
                "Shadow model Dice against the live one",
                "Pixel Dice of the shadow model's defects against the live model's, per class, "
                "over 15 minutes (docs/shadow.md). 1: they mark the same pixels; a class "
                "falling away means the candidate finds it differently. `defectd shadow "
                "report` has the table and the pictures of the disagreements.",
                Query(
                    "2 * sum by (class_name) (increase(defectd_shadow_pixels_total"
                    f'{{{LINE}, kind="both"}}[15m])) / sum by (class_name) '
                    "(increase(defectd_shadow_pixels_total"
                    f'{{{LINE}, kind=~"live|shadow"}}[15m]))',
                    "{{class_name}}",
                ),
                unit="percentunit",
            ),
            timeseries(
                "Shadow: found by one model only",
                "Shadow-compared frames per 15 minutes where only the live or only the shadow "
                "model found a class, and frames skipped because the shadow fell behind.",
                Query(
                    "sum by (class_name, outcome) (increase(defectd_shadow_found_total"
                    f'{{{LINE}, outcome=~"live_only|shadow_only"}}[15m]))',
                    "{{class_name}} {{outcome}}",
                ),
                Query(f"sum(increase(defectd_shadow_skipped_total{{{LINE}}}[15m]))", "skipped"),
                unit="short",
            ),
            labels_table(
                "Shadow run",
                "The shadow run in progress (`defectd_shadow_info`): the live and the shadow "
                "model.",
                f"defectd_shadow_info{{{LINE}}} == 1",
                width=12,
            ),
        ),
    ),
)


def _target(query: Query, ref: int) -> dict[str, Any]:
    return {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": query.expr,
        "instant": query.instant,
        "legendFormat": query.legend or "__auto",
        "range": not query.instant,
        "refId": chr(ord("A") + ref),
    }


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit, **panel.field_config}
    body: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": panel.overrides},
        "options": panel.options,
        "targets": [_target(query, ref) for ref, query in enumerate(panel.queries)],
    }
    if panel.transformations:
        body["transformations"] = panel.transformations
    return body


def layout() -> list[dict[str, Any]]:
    """Rows and panels with ids and grid positions: left to right, wrapping at 24 columns."""
    panels: list[dict[str, Any]] = []
    y = 0
    for title, row_panels in ROWS:
        panels.append(
            {
                "id": len(panels) + 1,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": y},
                "panels": [],
            }
        )
        y += 1
        x, row_height = 0, 0
        for panel in row_panels:
            if x + panel.width > WIDTH:
                x, y, row_height = 0, y + row_height, 0
            panels.append(_panel(panel, len(panels) + 1, x, y))
            x += panel.width
            row_height = max(row_height, panel.height)
        y += row_height
    return panels


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": "StandardVariableQuery"},
        "refresh": 2,  # on time range change: new cameras show up without a reload
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "regex": "",
        "sort": 1,
        "hide": 0,
        "skipUrlSync": False,
    }


def dashboard() -> dict[str, Any]:
    """The whole dashboard as Grafana 10 exports it (schemaVersion 38)."""
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": "defectd steel-strip inspection: frames, drops, latency, defects, health.",
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [],
        "liveNow": False,
        "panels": layout(),
        "refresh": "10s",
        "schemaVersion": 38,
        "tags": ["defectd"],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "options": [],
                    "refresh": 1,
                    "regex": "",
                    "hide": 0,
                    "includeAll": False,
                    "multi": False,
                    "skipUrlSync": False,
                },
                _variable("line", "Line", "label_values(defectd_build_info, line)"),
                _variable(
                    "camera",
                    "Camera",
                    'label_values(defectd_frames_received_total{line=~"$line"}, camera)',
                ),
            ]
        },
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": "defectd",
        "uid": "defectd",
        "version": 1,
        "weekStart": "",
    }


def render() -> str:
    """The dashboard file's text."""
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
