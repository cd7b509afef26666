"""A defect store the coil tracker filled, and hand-made events, for the web view's tests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.daemon.coils.helpers import fill_store as fill_coil_store

ODD_COIL = "X<1>&'\""  # a coil id a page must escape, and an address must quote


def fill_store(state: Path) -> str:
    """`tests.daemon.coils.helpers.fill_store` with `ODD_COIL` as its third coil."""
    return fill_coil_store(state, odd_coil=ODD_COIL)


def status_event(ready: bool = True, fps: float = 10.0) -> dict[str, Any]:
    return {
        "schema": "defectd.status/1",
        "topic_seq": 0,
        "run_id": "0123456789abcdef",
        "publish_ns": time.time_ns(),
        "uptime_s": 12.0,
        "fps": fps,
        "frames": {"received": 120, "processed": 118, "dropped": {"queue_full": 2}, "lost": 1},
        "queue_depth": 0,
        "slots": {"used": 1, "total": 16},
        "engine": {
            "backend": "onnxruntime",
            "device": "cpu",
            "precision": "fp32",
            "max_batch": 4,
            "model": "defectd-default 1.0.0",
            "classes": ["c1", "c2"],
        },
        "ready": ready,
    }


def frame_event(camera: str, seq: int, coil: str | None, position_m: float) -> dict[str, Any]:
    event: dict[str, Any] = {
        "line": "line1",
        "camera_id": camera,
        "seq": seq,
        "capture_ns": time.time_ns(),
        "receive_ns": time.time_ns(),
        "publish_ns": time.time_ns(),
        "latency_ms": 20.0,
        "daemon_latency_ms": 10.0,
        "classes": ["c1"],
        "defect_count": 1,
        "batch_size": 1,
        "position_m": position_m,
    }
    if coil is not None:
        event["coil_id"] = coil
    return event


def defect_event(
    camera: str, seq: int, coil: str | None, position_m: float, class_name: str = "c1"
) -> dict[str, Any]:
    """One region 5 × 5 px at (10, 10) of a 100 × 200 px frame, 1 mm a pixel."""
    top = position_m + 0.010
    event: dict[str, Any] = {
        "line": "line1",
        "camera_id": camera,
        "seq": seq,
        "capture_ns": time.time_ns(),
        "frame_shape": [100, 200],
        "class_id": 1,
        "class_name": class_name,
        "presence": 0.9,
        "area_px": 25,
        "region_count": 1,
        "regions": [
            {
                "bbox": [10, 10, 5, 5],
                "area_px": 25,
                "mean_score": 0.8,
                "max_score": 0.93,
                "centroid": [12.0, 12.0],
                "strip": {
                    "across_mm": [10.0, 15.0],
                    "along_m": [top, top + 0.005],
                    "width_mm": 5.0,
                    "length_mm": 5.0,
                    "area_mm2": 25.0,
                },
            }
        ],
        "model": "defectd-default 1.0.0",
        "position_m": position_m,
        "area_mm2": 25.0,
    }
    if coil is not None:
        event["coil_id"] = coil
    return event


def coil_event(coil: str, grade: str, ended_ns: int) -> dict[str, Any]:
    return {
        "line": "line1",
        "coil_id": coil,
        "started_ns": ended_ns - 10**9,
        "ended_ns": ended_ns,
        "end_reason": "next_coil",
        "head_m": 0.0,
        "tail_m": 1.0,
        "inspected_m": 1.0,
        "width_mm": 200.0,
        "frames": 10,
        "defects": 3,
        "classes": [],
        "gap_m": 0.0,
        "largest": [],
        "grade": grade,
        "grade_reasons": ["c1 count 3 > 1 → B"] if grade != "A" else [],
        "anomalies": {},
    }
