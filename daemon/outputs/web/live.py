"""The live state of the line, in memory: what the daemon's events said most recently.

`LiveState.handle` takes every event (status heartbeats, frame summaries, defect events,
closed coils) and keeps what the line page shows: the last heartbeat and its age, per camera
frames/s, frames and the frames missing from its sequence, the last `FEED` defect events
newest first, the coil being inspected and the coils that closed. `snapshot` hands the pages
one consistent, immutable view; HTTP threads read it while the output stage's thread writes.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from defectd.daemon.coils.model import CoilRecord
from defectd.daemon.outputs.web.extent import CoilExtent, ExtentTracker
from defectd.daemon.topics import COIL, DEFECT, FRAME, STATUS, kind_of

FEED = 50  # defect events the line page lists
CLOSED = 20  # closed coils remembered from their events
RATE_WINDOW_S = 5.0  # frames/s per camera over this long


@dataclass(frozen=True)
class Heartbeat:
    """The last status heartbeat (docs/events.md), with how long ago it came."""

    fps: float
    received: int
    processed: int
    dropped: tuple[tuple[str, int], ...]  # reason → frames, largest first
    lost: int
    queue_depth: int
    ready: bool
    engine: str | None  # "onnxruntime cpu fp32, model …"; None while it loads
    uptime_s: float
    age_s: float

    @property
    def dropped_total(self) -> int:
        return sum(count for _, count in self.dropped)


@dataclass(frozen=True)
class CameraLive:
    """One camera, from its frame summaries."""

    camera_id: str
    frames: int = 0
    fps: float = 0.0
    missed: int = 0  # frames missing from its seq: lost on the way or dropped in the daemon
    latency_ms: float | None = None  # capture → publish of its last frame
    age_s: float | None = None  # since its last frame; None: none yet
    defect_frames: int = 0


@dataclass(frozen=True)
class FeedItem:
    """One defect event: a class found on a frame."""

    key: str  # "camera/seq/class_id": what a stored strip defect's first region names
    capture_ns: int
    camera_id: str
    seq: int
    class_id: int
    class_name: str
    area_px: int
    area_mm2: float | None
    regions: int
    max_score: float | None
    coil_id: str | None
    position_m: float | None  # along the coil, where its first region starts
    crop: str | None = None  # the stored strip defect's crop, once the store has it


@dataclass(frozen=True)
class CoilSummary:
    """A closed coil as the lists show it (from its event or its store record)."""

    line: str
    coil_id: str
    grade: str
    ended_ns: int
    inspected_m: float
    defects: int
    gap_m: float
    grade_reasons: tuple[str, ...] = ()

    @classmethod
    def of(cls, record: CoilRecord) -> CoilSummary:
        return cls(
            record.line,
            record.coil_id,
            record.grade,
            record.ended_ns,
            record.inspected_m,
            record.defects,
            record.gap_m,
            record.grade_reasons,
        )


@dataclass(frozen=True)
class OpenCoil:
    """The coil under the cameras now."""

    coil_id: str
    frames: int
    defects: int  # regions found on its frames so far (not yet joined into strip defects)
    extent: CoilExtent | None


@dataclass(frozen=True)
class LiveSnapshot:
    """Everything the line page shows, at one moment."""

    line: str | None
    version: int
    heartbeat: Heartbeat | None
    cameras: tuple[CameraLive, ...]
    feed: tuple[FeedItem, ...]  # newest first
    open_coil: OpenCoil | None
    closed: tuple[CoilSummary, ...]  # from coil events, newest first
    events: int  # events taken since start


@dataclass
class _Camera:
    frames: int = 0
    next_seq: int | None = None
    missed: int = 0
    latency_ms: float | None = None
    last_at: float | None = None
    defect_frames: int = 0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=4096))


class LiveState:
    """The live state (module docstring). `line`: only that line's events (None: any);
    `cameras`: listed from the start, before their first frame; `clock`: monotonic seconds."""

    def __init__(
        self,
        line: str | None,
        cameras: Sequence[str] = (),
        clock: Callable[[], float] = time.monotonic,
        feed_size: int = FEED,
    ) -> None:
        self._line = line or None
        self._clock = clock
        self._lock = threading.Lock()
        self._cameras: dict[str, _Camera] = {camera: _Camera() for camera in cameras}
        self._feed: deque[FeedItem] = deque(maxlen=feed_size)
        self._closed: deque[CoilSummary] = deque(maxlen=CLOSED)
        self._extents = ExtentTracker()
        self._status: tuple[Mapping[str, Any], float] | None = None
        self._open: str | None = None
        self._open_frames = 0
        self._open_defects = 0
        self._version = 0
        self._events = 0
        self.unreadable = 0  # events whose fields were not what docs/events.md says

    @property
    def version(self) -> int:
        """Bumped by every event taken: the pages push an update when it changed."""
        return self._version

    def handle(self, topic: str, payload: Mapping[str, Any]) -> bool:
        """Take one event; False when it is not for this view (another line, another kind)
        or its fields are unreadable (counted in `unreadable`)."""
        kind = kind_of(topic)
        if kind != STATUS and self._line is not None and payload.get("line") != self._line:
            return False
        handler = {
            STATUS: self._status_event,
            FRAME: self._frame,
            DEFECT: self._defect,
            COIL: self._coil,
        }.get(kind)
        if handler is None:
            return False
        with self._lock:
            try:
                handler(payload)
            except (KeyError, TypeError, ValueError, IndexError):
                self.unreadable += 1
                return False
            if self._line is None and isinstance(payload.get("line"), str):
                self._line = payload["line"]
            self._version += 1
            self._events += 1
        return True

    def set_crops(self, crops: Mapping[str, str]) -> None:
        """Crops found in the store for feed items, by `FeedItem.key`."""
        with self._lock:
            changed = False
            for index, item in enumerate(self._feed):
                crop = crops.get(item.key)
                if crop is not None and item.crop != crop:
                    self._feed[index] = replace(item, crop=crop)
                    changed = True
            if changed:
                self._version += 1

    def extent(self, coil_id: str) -> CoilExtent | None:
        """What the events said about `coil_id`'s place on the strip (recent coils only)."""
        with self._lock:
            return self._extents.get(coil_id)

    def snapshot(self) -> LiveSnapshot:
        """The state now (`LiveSnapshot`)."""
        with self._lock:
            now = self._clock()
            heartbeat = None
            if self._status is not None:
                payload, at = self._status
                heartbeat = _heartbeat(payload, now - at)
            cameras = tuple(_camera(name, cam, now) for name, cam in self._cameras.items())
            open_coil = None
            if self._open is not None:
                extent = self._extents.get(self._open)
                open_coil = OpenCoil(self._open, self._open_frames, self._open_defects, extent)
            return LiveSnapshot(
                line=self._line,
                version=self._version,
                heartbeat=heartbeat,
                cameras=cameras,
                feed=tuple(reversed(self._feed)),
                open_coil=open_coil,
                closed=tuple(reversed(self._closed)),
                events=self._events,
            )

    # -- one method per kind of event, called with the lock held -----------------------------

    def _status_event(self, payload: Mapping[str, Any]) -> None:
        _heartbeat(payload, 0.0)  # refuse an unreadable one now, not at every snapshot
        self._status = (payload, self._clock())

    def _frame(self, payload: Mapping[str, Any]) -> None:
        camera_id = str(payload["camera_id"])
        seq = int(payload["seq"])
        coil_id = _optional_str(payload.get("coil_id"))
        camera = self._cameras.setdefault(camera_id, _Camera())
        now = self._clock()
        camera.frames += 1
        if camera.next_seq is not None and seq > camera.next_seq:
            camera.missed += seq - camera.next_seq
        camera.next_seq = seq + 1
        camera.latency_ms = _number(payload.get("latency_ms"))
        camera.last_at = now
        camera.recent.append(now)
        if payload.get("classes"):
            camera.defect_frames += 1
        if coil_id != self._open:
            self._open, self._open_frames, self._open_defects = coil_id, 0, 0
        if coil_id is not None:
            self._open_frames += 1
            self._open_defects += int(payload.get("defect_count", 0))
        self._extents.frame(coil_id, camera_id, seq, _number(payload.get("position_m")))

    def _defect(self, payload: Mapping[str, Any]) -> None:
        camera_id = str(payload["camera_id"])
        seq = int(payload["seq"])
        class_id = int(payload["class_id"])
        regions: Sequence[Mapping[str, Any]] = payload["regions"]
        coil_id = _optional_str(payload.get("coil_id"))
        shape: Sequence[int] = payload["frame_shape"]
        for region in regions:
            self._extents.region(coil_id, camera_id, seq, shape, region)
        scores = [s for s in (_number(r.get("max_score")) for r in regions) if s is not None]
        self._feed.append(
            FeedItem(
                key=f"{camera_id}/{seq}/{class_id}",
                capture_ns=int(payload["capture_ns"]),
                camera_id=camera_id,
                seq=seq,
                class_id=class_id,
                class_name=str(payload["class_name"]),
                area_px=int(payload["area_px"]),
                area_mm2=_number(payload.get("area_mm2")),
                regions=int(payload["region_count"]),
                max_score=max(scores) if scores else None,
                coil_id=coil_id,
                position_m=_first_along(regions, _number(payload.get("position_m"))),
            )
        )

    def _coil(self, payload: Mapping[str, Any]) -> None:
        summary = CoilSummary(
            line=str(payload["line"]),
            coil_id=str(payload["coil_id"]),
            grade=str(payload["grade"]),
            ended_ns=int(payload["ended_ns"]),
            inspected_m=float(payload["inspected_m"]),
            defects=int(payload["defects"]),
            gap_m=float(payload["gap_m"]),
            grade_reasons=tuple(str(r) for r in payload.get("grade_reasons", ())),
        )
        self._closed.append(summary)
        if summary.coil_id == self._open:  # closed by silence: nothing under the cameras
            self._open = None


def merge_coils(*lists: Iterable[CoilSummary], limit: int) -> tuple[CoilSummary, ...]:
    """Coils from events and from the store, each once (the later end wins), newest first."""
    best: dict[tuple[str, str], CoilSummary] = {}
    for coils in lists:
        for coil in coils:
            key = (coil.line, coil.coil_id)
            if key not in best or coil.ended_ns >= best[key].ended_ns:
                best[key] = coil
    return tuple(sorted(best.values(), key=lambda c: -c.ended_ns)[:limit])


def _heartbeat(payload: Mapping[str, Any], age_s: float) -> Heartbeat:
    frames = payload["frames"]
    dropped = {str(k): int(v) for k, v in dict(frames["dropped"]).items()}
    engine = payload.get("engine")
    text = None
    if isinstance(engine, Mapping):
        parts = [engine.get("backend"), engine.get("device"), engine.get("precision")]
        text = " ".join(str(p) for p in parts if p)
        if engine.get("model"):
            text += f", {engine['model']}"
    return Heartbeat(
        fps=float(payload["fps"]),
        received=int(frames["received"]),
        processed=int(frames["processed"]),
        dropped=tuple(sorted(dropped.items(), key=lambda kv: -kv[1])),
        lost=int(frames.get("lost", 0)),
        queue_depth=int(payload.get("queue_depth", 0)),
        ready=bool(payload["ready"]),
        engine=text,
        uptime_s=float(payload.get("uptime_s", 0.0)),
        age_s=max(0.0, age_s),
    )


def _camera(camera_id: str, camera: _Camera, now: float) -> CameraLive:
    while camera.recent and camera.recent[0] < now - RATE_WINDOW_S:
        camera.recent.popleft()
    fps = 0.0
    if camera.recent:
        span = max(1.0, min(RATE_WINDOW_S, now - camera.recent[0]))
        fps = len(camera.recent) / span
    return CameraLive(
        camera_id=camera_id,
        frames=camera.frames,
        fps=fps,
        missed=camera.missed,
        latency_ms=camera.latency_ms,
        age_s=None if camera.last_at is None else max(0.0, now - camera.last_at),
        defect_frames=camera.defect_frames,
    )


def _first_along(regions: Sequence[Mapping[str, Any]], position_m: float | None) -> float | None:
    for region in regions:
        strip = region.get("strip")
        if isinstance(strip, Mapping):
            along = strip.get("along_m")
            if isinstance(along, Sequence) and along and _number(along[0]) is not None:
                return float(along[0])
    return position_m


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
