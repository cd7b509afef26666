"""The published event types and the builders that make them from a frame's defects.

Three kinds, each a frozen dataclass with a versioned schema name (docs/events.md,
docs/schemas/): `DefectEvent` (one per frame and class found), `FrameSummary` (one per
processed frame) and `StatusEvent` (the heartbeat). `defect_events` and `frame_summary` turn a
frame's `FrameDefects` into events, and `RateMeter` gives the heartbeat its fps. Turning
events into bytes is `daemon.events.codec`'s job.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from defectd.daemon.coils.model import CoilRecord
from defectd.daemon.geometry import StripGeometry, StripPosition
from defectd.daemon.topics import (
    COIL,
    DEFECT,
    FRAME,
    STATUS,
    coil_topic,
    defect_topic,
    frame_topic,
    sanitise_segment,
    status_topic,
)
from defectd.engines.engine import EngineInfo
from defectd.engines.postprocess import Component, FrameDefects

SCHEMA_VERSION = 1
DEFECT_SCHEMA = f"defectd.{DEFECT}/{SCHEMA_VERSION}"
FRAME_SCHEMA = f"defectd.{FRAME}/{SCHEMA_VERSION}"
STATUS_SCHEMA = f"defectd.{STATUS}/{SCHEMA_VERSION}"
COIL_SCHEMA = f"defectd.{COIL}/{SCHEMA_VERSION}"
SCHEMAS = {DEFECT: DEFECT_SCHEMA, FRAME: FRAME_SCHEMA, STATUS: STATUS_SCHEMA, COIL: COIL_SCHEMA}

# A frame full of noise can hold thousands of components; the event keeps the largest and
# says how many there were (`region_count`), so one bad frame cannot produce a megabyte message.
MAX_REGIONS = 256


class FrameMeta(Protocol):
    """What the events take from a frame's header (`daemon.protocol.FrameHeader` fits)."""

    @property
    def camera_id(self) -> str: ...

    @property
    def seq(self) -> int: ...  # the camera's frame counter

    @property
    def capture_ns(self) -> int: ...  # camera clock, ns since the Unix epoch

    @property
    def coil_id(self) -> str | None: ...

    @property
    def position_m(self) -> float | None: ...  # strip position along the coil, metres


@dataclass(frozen=True)
class Region:
    """One connected region of a defect class, as published."""

    bbox: tuple[int, int, int, int]  # x, y, width, height in frame pixels
    area_px: int
    mean_score: float
    max_score: float
    centroid: tuple[float, float]  # x, y in frame pixels
    strip: StripPosition | None = None  # on the strip, when the camera's geometry is given

    @classmethod
    def from_component(cls, component: Component, strip: StripPosition | None = None) -> Region:
        return cls(
            bbox=component.bbox,
            area_px=component.area,
            mean_score=component.mean_score,
            max_score=component.score,
            centroid=component.centroid,
            strip=strip,
        )

    def to_dict(self) -> dict[str, Any]:
        out = {
            "bbox": list(self.bbox),
            "area_px": self.area_px,
            "mean_score": _score(self.mean_score),
            "max_score": _score(self.max_score),
            "centroid": [round(self.centroid[0], 2), round(self.centroid[1], 2)],
        }
        if self.strip is not None:
            out["strip"] = self.strip.to_dict()
        return out


@dataclass(frozen=True)
class DefectEvent:
    """One defect class found on one frame, with its regions (largest first)."""

    SCHEMA: ClassVar[str] = DEFECT_SCHEMA

    line: str
    camera_id: str
    seq: int
    capture_ns: int
    frame_shape: tuple[int, int]  # height, width: what `rle` and the boxes refer to
    class_id: int  # 1-based, as in Kaggle's train.csv
    class_name: str
    presence: float | None  # the model's presence score; None when it was not finite
    area_px: int  # every kept pixel of the class, including regions cut by MAX_REGIONS
    region_count: int
    regions: tuple[Region, ...]
    model: str  # "name version" from the model card
    rle: str | None = None  # Kaggle RLE of the class mask, when configured
    coil_id: str | None = None
    position_m: float | None = None
    area_mm2: float | None = None  # every kept pixel of the class, on the strip

    def __post_init__(self) -> None:
        _sanitise_fields(self, "line", "camera_id", "class_name")

    @property
    def topic(self) -> str:
        return defect_topic(self.line, self.camera_id, self.class_name)

    def to_payload(self) -> dict[str, Any]:
        """The message fields after ``schema``/``topic_seq``/``run_id``; optional ones only
        when set."""
        payload: dict[str, Any] = {
            "line": self.line,
            "camera_id": self.camera_id,
            "seq": self.seq,
            "capture_ns": self.capture_ns,
            "frame_shape": list(self.frame_shape),
            "class_id": self.class_id,
            "class_name": self.class_name,
            "presence": None if self.presence is None else _score(self.presence),
            "area_px": self.area_px,
            "region_count": self.region_count,
            "regions": [region.to_dict() for region in self.regions],
            "model": self.model,
        }
        _put_optional(
            payload,
            rle=self.rle,
            coil_id=self.coil_id,
            position_m=self.position_m,
            area_mm2=None if self.area_mm2 is None else round(self.area_mm2, 2),
        )
        return payload


@dataclass(frozen=True)
class FrameSummary:
    """One processed frame: what was found and how long it took."""

    SCHEMA: ClassVar[str] = FRAME_SCHEMA

    line: str
    camera_id: str
    seq: int
    capture_ns: int  # camera clock
    receive_ns: int  # daemon clock, when the frame arrived
    publish_ns: int  # daemon clock, when its events were published
    classes: tuple[str, ...]  # names of the classes found, in class id order
    defect_count: int  # regions over all classes (before MAX_REGIONS)
    batch_size: int  # frames in the engine batch this frame ran in
    coil_id: str | None = None
    position_m: float | None = None
    model: str | None = None  # "name version" of the model that inferred it

    def __post_init__(self) -> None:
        _sanitise_fields(self, "line", "camera_id")
        object.__setattr__(self, "classes", tuple(sanitise_segment(c) for c in self.classes))

    @property
    def topic(self) -> str:
        return frame_topic(self.line, self.camera_id)

    @property
    def latency_ms(self) -> float:
        """Capture → publish; spans two clocks, so negative when the camera's runs ahead."""
        return (self.publish_ns - self.capture_ns) / 1e6

    @property
    def daemon_latency_ms(self) -> float:
        """Receive → publish: the time spent inside defectd (one clock)."""
        return (self.publish_ns - self.receive_ns) / 1e6

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "line": self.line,
            "camera_id": self.camera_id,
            "seq": self.seq,
            "capture_ns": self.capture_ns,
            "receive_ns": self.receive_ns,
            "publish_ns": self.publish_ns,
            "latency_ms": round(self.latency_ms, 3),
            "daemon_latency_ms": round(self.daemon_latency_ms, 3),
            "classes": list(self.classes),
            "defect_count": self.defect_count,
            "batch_size": self.batch_size,
        }
        _put_optional(payload, model=self.model, coil_id=self.coil_id, position_m=self.position_m)
        return payload


@dataclass(frozen=True)
class FrameCounts:
    """Frame accounting since start: received = processed + dropped + in flight."""

    received: int = 0
    processed: int = 0
    dropped: Mapping[str, int] = field(default_factory=dict)  # reason → frames
    lost: int = 0  # never received: gaps in the cameras' frame counters

    def __post_init__(self) -> None:
        # A private sorted copy: the caller's live counters must not change a built event.
        dropped = {sanitise_segment(reason): count for reason, count in self.dropped.items()}
        object.__setattr__(self, "dropped", dict(sorted(dropped.items())))

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    @property
    def in_flight(self) -> int:
        return self.received - self.processed - self.dropped_total

    def to_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "processed": self.processed,
            "dropped": dict(self.dropped),
            "lost": self.lost,
        }


@dataclass(frozen=True)
class StatusEvent:
    """The heartbeat: published every second, also while the engine is still loading."""

    SCHEMA: ClassVar[str] = STATUS_SCHEMA

    publish_ns: int  # daemon clock
    uptime_s: float
    fps: float  # frames processed per second over the last heartbeat interval
    frames: FrameCounts
    queue_depth: int  # frames waiting for the batcher
    slots_used: int  # shared-memory frame slots in use
    slots_total: int
    engine: EngineInfo | None  # None until the engine is open
    ready: bool  # engine open and warmed up: frames are being processed

    @property
    def topic(self) -> str:
        return status_topic()

    def to_payload(self) -> dict[str, Any]:
        engine = self.engine
        return {
            "publish_ns": self.publish_ns,
            "uptime_s": round(self.uptime_s, 3),
            "fps": round(self.fps, 2),
            "frames": self.frames.to_dict(),
            "queue_depth": self.queue_depth,
            "slots": {"used": self.slots_used, "total": self.slots_total},
            "engine": None
            if engine is None
            else {
                "backend": engine.backend,
                "device": engine.device,
                "precision": engine.precision,
                "max_batch": engine.max_batch,
                "model": engine.model,
                "classes": list(engine.classes),
            },
            "ready": self.ready,
        }


@dataclass(frozen=True)
class CoilEvent:
    """A coil closed: what was inspected, what was found, its grade (`daemon.coils`)."""

    SCHEMA: ClassVar[str] = COIL_SCHEMA

    record: CoilRecord

    @property
    def topic(self) -> str:
        return coil_topic(self.record.line, self.record.coil_id)

    def to_payload(self) -> dict[str, Any]:
        coil = self.record
        return {
            "line": sanitise_segment(coil.line),
            "coil_id": coil.coil_id,
            "started_ns": coil.started_ns,
            "ended_ns": coil.ended_ns,
            "end_reason": coil.end_reason,
            "head_m": round(coil.head_m, 4),
            "tail_m": round(coil.tail_m, 4),
            "inspected_m": round(coil.inspected_m, 4),
            "width_mm": round(coil.width_mm, 2),
            "frames": coil.frames,
            "defects": coil.defects,
            "classes": [
                {
                    "class_name": count.class_name,
                    "count": count.count,
                    "area_mm2": round(count.area_mm2, 2),
                    "per_100m": round(count.per_100m, 4),
                    "per_m2": round(count.per_m2, 6),
                }
                for count in coil.classes
            ],
            "gap_m": round(coil.gap_m, 4),
            "largest": list(coil.largest),
            "grade": coil.grade,
            "grade_reasons": list(coil.grade_reasons),
            "anomalies": {kind: count for kind, count in coil.anomalies},
        }


Event = DefectEvent | FrameSummary | StatusEvent | CoilEvent


def defect_events(
    frame: FrameMeta,
    defects: FrameDefects,
    class_names: Sequence[str],
    include_rle: bool = False,
    *,
    line: str,
    model: str,
    max_regions: int = MAX_REGIONS,
    geometry: StripGeometry | None = None,
) -> list[DefectEvent]:
    """One `DefectEvent` per class kept in `defects`, in class id order (none for a clean
    frame).

    `class_names[i]` names class ``i + 1``; `include_rle` adds the Kaggle RLE of each class
    mask (costly on large masks: off by default); each event keeps at most `max_regions`
    regions, largest first. `line` is the camera's line and `model` the engine's
    ``info.model``. With the camera's `geometry` every region and the event also carry their
    place and size on the strip (`daemon.geometry`).
    """
    _check_class_names(defects, class_names)
    if max_regions < 0:
        raise ValueError(f"max_regions must be ≥ 0, got {max_regions}")
    by_class: dict[int, list[Component]] = {}
    for component in defects.components:
        by_class.setdefault(component.class_id, []).append(component)
    events = []
    for class_id in sorted(by_class):
        found = sorted(by_class[class_id], key=lambda c: (-c.area, c.bbox[1], c.bbox[0]))
        area_px = sum(c.area for c in found)
        position = _finite_or_none(frame.position_m)

        events.append(
            DefectEvent(
                line=line,
                camera_id=frame.camera_id,
                seq=frame.seq,
                capture_ns=frame.capture_ns,
                frame_shape=defects.shape,
                class_id=class_id,
                class_name=class_names[class_id - 1],
                presence=_finite_or_none(defects.presence[class_id - 1]),
                area_px=area_px,
                region_count=len(found),
                regions=tuple(
                    Region.from_component(
                        c,
                        None
                        if geometry is None
                        else geometry.place(c.bbox, c.area, frame.seq, defects.shape[0], position),
                    )
                    for c in found[:max_regions]
                ),
                model=model,
                rle=defects.rle(class_id) if include_rle else None,
                coil_id=frame.coil_id,
                position_m=position,
                area_mm2=None if geometry is None else geometry.area_mm2(area_px),
            )
        )
    return events


def frame_summary(
    frame: FrameMeta,
    defects: FrameDefects,
    class_names: Sequence[str],
    *,
    line: str,
    receive_ns: int,
    publish_ns: int,
    batch_size: int,
    model: str | None = None,
) -> FrameSummary:
    """The `FrameSummary` of one processed frame: `receive_ns` is when the frame arrived and
    `publish_ns` now, both on the daemon's wall clock (`time.time_ns()`)."""
    _check_class_names(defects, class_names)
    return FrameSummary(
        line=line,
        camera_id=frame.camera_id,
        seq=frame.seq,
        capture_ns=frame.capture_ns,
        receive_ns=receive_ns,
        publish_ns=publish_ns,
        classes=tuple(class_names[class_id - 1] for class_id in defects.classes),
        defect_count=len(defects.components),
        batch_size=batch_size,
        coil_id=frame.coil_id,
        position_m=_finite_or_none(frame.position_m),
        model=model,
    )


class RateMeter:
    """Events per second between successive readings of a growing counter (the status fps)."""

    def __init__(self) -> None:
        self._last: tuple[int, int] | None = None  # (count, monotonic ns)

    def update(self, count: int, now_ns: int) -> float:
        """The rate since the previous call; 0.0 on the first call or after a counter reset."""
        last, self._last = self._last, (count, now_ns)
        if last is None or count < last[0] or now_ns <= last[1]:
            return 0.0
        return (count - last[0]) * 1e9 / (now_ns - last[1])


def _score(value: float) -> float:
    return round(float(value), 4)


def _finite_or_none(value: float | None) -> float | None:
    """`value` as a float, or None when it is missing, NaN or infinite."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _sanitise_fields(event: object, *names: str) -> None:
    # Topic segments and payload fields must agree, so the payload carries the sanitised ids.
    for name in names:
        object.__setattr__(event, name, sanitise_segment(getattr(event, name)))


def _put_optional(payload: dict[str, Any], **fields: Any) -> None:
    payload.update((key, value) for key, value in fields.items() if value is not None)


def _check_class_names(defects: FrameDefects, class_names: Sequence[str]) -> None:
    if len(class_names) != len(defects.presence):
        raise ValueError(
            f"{len(class_names)} class names for a model with {len(defects.presence)} classes: "
            "pass the engine's `classes`"
        )
