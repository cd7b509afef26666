"""Store stage: published frames → strip defects and coils → the defect store.

The publisher hands every frame it published (`Published`: its defect events, summary and,
with ``store.crops``, the pixels around its largest regions) to this process on its own ipc
socket, without waiting (a full queue is counted, ``defectd_store_dropped_total{reason=
"queue_full"}``). Here each frame is placed on the strip (`coils.placed`), filed by the coil
tracker (`coils.tracker`), and what became final — strip defects with their crop saved,
coverage gaps, closed coils — goes to the `StoreWriter` as one batch. The writer owns the
database connection in its own thread: a slow or unreachable database never stalls this
loop, let alone the pipeline (spooled to disk, replayed when it answers; docs/coils.md).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import zmq

from defectd.daemon.coils.grading import GradeRules
from defectd.daemon.coils.merge import first_region
from defectd.daemon.coils.model import CoilRecord, StripDefect
from defectd.daemon.coils.placed import place_frame
from defectd.daemon.coils.tracker import CoilTracker, TrackerOutput, TrackerSettings
from defectd.daemon.config import DaemonConfig
from defectd.daemon.events import CoilEvent
from defectd.daemon.geometry import StripGeometry
from defectd.daemon.metrics import Metrics, create_metrics
from defectd.daemon.stages.common import Reporter, StageSpec, bind_ipc, serve, start_stage
from defectd.daemon.stages.postprocess import Crop, Published
from defectd.daemon.store.backend import Retained, redact
from defectd.daemon.store.batch import StoreBatch
from defectd.engines.model_card import read_card

log = logging.getLogger(__name__)

POLL_MS = 200
_DRAIN = 256
PENDING_CROPS = 4096  # crops kept for regions whose strip defect is not complete yet
CROP_LIMIT_EVERY_NS = 60 * 10**9  # how often the crops' size limit is enforced


class BatchSink(Protocol):
    """Where finished rows go (`store.writer.StoreWriter`)."""

    def submit(self, batch: StoreBatch) -> bool: ...


class CropSink(Protocol):
    """Where defect pictures go (`store.crops.CropStore`)."""

    def save(
        self,
        defect_id: str,
        image: Any,
        *,
        coil_id: str | None = None,
        capture_ns: int | None = None,
    ) -> str: ...

    def enforce_limit(self) -> int: ...


class StoreStage:
    """Frames in, batches out (module docstring); no I/O of its own but the sinks'."""

    def __init__(
        self,
        config: DaemonConfig,
        classes: tuple[str, ...],
        sink: BatchSink,
        crops: CropSink | None = None,
        clock: Callable[[], int] = time.time_ns,
        on_coil: Callable[[CoilRecord], None] | None = None,
    ) -> None:
        coils = config.coils
        settings = TrackerSettings(
            classes=classes,
            silence_s=coils.silence_s,
            largest=coils.largest,
            tolerance_mm=coils.tolerance_mm,
            rules=GradeRules(coils.grades, coils.rules),
        )
        self._tracker = CoilTracker(config.line.name, [c.id for c in config.cameras], settings)
        self._cameras = {c.id: c for c in config.cameras}
        self._geometry = {c.id: StripGeometry.of(c) for c in config.cameras}
        self._sink = sink
        self._crops = crops
        self._clock = clock
        self._on_coil = on_coil  # a closed coil's event goes out (the publisher)
        self._pending: OrderedDict[tuple[str, int, int, tuple[int, int, int, int]], Crop] = (
            OrderedDict()
        )
        self.frames = 0
        self.unplaced = 0  # frames of cameras without geometry (check-config refuses those)
        self.dropped_rows = 0  # rows the writer's queue had no room for
        self.coils_closed: dict[str, int] = {}  # grade → coils
        self.crops_saved = 0
        self._limit_at = 0

    @property
    def tracker(self) -> CoilTracker:
        return self._tracker

    def handle(self, item: Published) -> None:
        """File one published frame."""
        summary = item.summary
        camera = self._cameras.get(summary.camera_id)
        geometry = self._geometry.get(summary.camera_id)
        if camera is None or geometry is None:
            self.unplaced += 1
            return
        self.frames += 1
        for crop in item.crops:
            key = (summary.camera_id, summary.seq, crop.class_id, crop.bbox)
            self._pending[key] = crop
            while len(self._pending) > PENDING_CROPS:
                self._pending.popitem(last=False)
        placed = place_frame(summary, item.defects, geometry, (camera.height, camera.width))
        self._emit(self._tracker.add(placed, self._clock()))

    def tick(self) -> None:
        """Close a coil that went silent; keep the crops within their limit (every minute)."""
        now = self._clock()
        self._emit(self._tracker.tick(now))
        if self._crops is not None and now >= self._limit_at:
            self._crops.enforce_limit()
            self._limit_at = now + CROP_LIMIT_EVERY_NS

    def close(self) -> None:
        """The daemon stops: close the open coil and every open defect."""
        self._emit(self._tracker.close())

    def _emit(self, out: TrackerOutput) -> None:
        if out.empty:
            return
        defects = tuple(self._with_crop(d) for d in out.defects)
        for coil in out.coils:
            self.coils_closed[coil.grade] = self.coils_closed.get(coil.grade, 0) + 1
            log.info(
                "coil %s closed (%s): %.1f m, %d defects, grade %s%s",
                coil.coil_id,
                coil.end_reason,
                coil.inspected_m,
                coil.defects,
                coil.grade,
                f" ({'; '.join(coil.grade_reasons)})" if coil.grade_reasons else "",
            )
        batch = StoreBatch(defects=defects, gaps=out.gaps, coils=out.coils)
        if not self._sink.submit(batch):
            self.dropped_rows += batch.rows
        if self._on_coil is not None:
            for coil in out.coils:
                self._on_coil(coil)

    def _with_crop(self, defect: StripDefect) -> StripDefect:
        if self._crops is None:
            return defect
        crop = self._pending.pop(first_region(defect), None)
        if crop is None:
            return defect
        try:
            path = self._crops.save(
                defect.defect_id, crop.pixels, coil_id=defect.coil_id, capture_ns=defect.capture_ns
            )
            self.crops_saved += 1
            return replace(defect, crop=path)
        except OSError as exc:
            log.warning("crop of %s not saved: %s", defect.defect_id, exc)
            return defect


def default_store_url(environ: dict[str, str] | None = None) -> str:
    """SQLite under systemd's StateDirectory, else ./defectd-state (config `store.url`)."""
    import os

    env = os.environ if environ is None else environ
    state = env.get("STATE_DIRECTORY", "").split(":")[0]
    base = Path(state) if state else Path("defectd-state")
    return f"sqlite:///{(base / 'defects.db').resolve()}"


def crops_directory(url: str, environ: dict[str, str] | None = None) -> Path:
    """Crop JPEGs: ``crops/`` beside a SQLite file, else under the state directory."""
    import os

    if url.startswith("sqlite:"):
        from defectd.daemon.store.backend import sqlite_path

        return sqlite_path(url).parent / "crops"
    env = os.environ if environ is None else environ
    state = env.get("STATE_DIRECTORY", "").split(":")[0]
    return (Path(state) if state else Path("defectd-state")).resolve() / "crops"


def spool_directory(url: str, environ: dict[str, str] | None = None) -> Path:
    """Spooled batches: ``spool/`` beside a SQLite file, else under the state directory."""
    return crops_directory(url, environ).parent / "spool"


def drain_socket(socket: zmq.Socket[bytes], stage: StoreStage, wait_ms: int) -> int:
    """Handle what waits on the stage's inbox; how many items."""
    if not socket.poll(wait_ms):
        return 0
    for count in range(_DRAIN):
        try:
            item = socket.recv_pyobj(zmq.NOBLOCK)
        except zmq.Again:
            return count
        if isinstance(item, Published):
            try:
                stage.handle(item)
            except Exception:
                log.exception("store stage failed on frame %s/%s; skipped",
                              item.summary.camera_id, item.summary.seq)  # fmt: skip
    return _DRAIN


def run_store(spec: StageSpec) -> None:
    """Entry point of the store stage: file frames until SIGTERM, then what is queued; close
    the open coil; let the writer finish (or spool) what it holds."""
    from defectd.daemon.store.backend import open_store
    from defectd.daemon.store.crops import CropStore
    from defectd.daemon.store.spool import Spool
    from defectd.daemon.store.writer import RetentionPolicy, StoreWriter, WriterConfig

    stop = start_stage(spec)
    config = spec.config
    settings = config.store
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    reporter = Reporter(context, spec)
    metrics = create_metrics([camera.id for camera in config.cameras])
    url = settings.url or default_store_url()
    card = read_card(config.model.dir)
    crops = None
    if settings.crops:
        crops = CropStore(crops_directory(url), int(settings.crops_max_mb * 2**20))
    retention = None
    if settings.retention_days is not None or settings.max_defects is not None:
        age = None if settings.retention_days is None else settings.retention_days * 86400
        retention = RetentionPolicy(max_age_s=age, max_defects=settings.max_defects)

    def retained(result: Retained) -> None:
        if crops is not None:
            crops.remove(result.crops)

    spool = Spool(spool_directory(url), max_bytes=int(settings.spool_max_mb * 2**20))
    writer = StoreWriter(
        lambda: open_store(url),
        spool,
        WriterConfig(queue_size=settings.queue, retention=retention),
        on_retained=retained,
    ).start()
    events = context.socket(zmq.PUSH)  # closed coils' events, published like the others
    events.setsockopt(zmq.SNDHWM, 1000)
    events.setsockopt(zmq.LINGER, 1000)
    events.connect(spec.paths.publisher)

    def publish(coil: CoilRecord) -> None:
        with contextlib.suppress(zmq.Again):  # the publisher gone (stopping): stored anyway
            events.send_pyobj(CoilEvent(coil), zmq.NOBLOCK)

    stage = StoreStage(config, tuple(card.classes), writer, crops, on_coil=publish)
    inbox = context.socket(zmq.PULL)
    inbox.setsockopt(zmq.LINGER, 0)
    bind_ipc(inbox, spec.paths.store)
    log.info("defect store: %s", redact(url))
    reported = _Reported()

    def drain(wait_ms: int) -> int:
        handled = drain_socket(inbox, stage, wait_ms)
        stage.tick()
        reported.update(stage, writer.stats(), metrics)
        return handled

    try:
        serve(stop, reporter, drain, POLL_MS)
        stage.close()
    finally:
        writer.close(timeout_s=config.shutdown.drain_timeout_s)
        reported.update(stage, writer.stats(), metrics)
        reporter.flush(final=True)
        reporter.close()
        inbox.close(linger=0)
        events.close()
        context.term()


class _Reported:
    """What has gone to the metrics already (the writer's counts are totals)."""

    def __init__(self) -> None:
        self.written = self.spooled = self.replayed = self.dropped = self.stage_dropped = 0
        self.coils: dict[str, int] = {}
        self.anomalies: dict[str, int] = {}

    def update(self, stage: StoreStage, stats: Any, metrics: Metrics) -> None:
        metrics.store_progress(
            stats.written_rows - self.written,
            stats.spooled_rows - self.spooled,
            stats.replayed_rows - self.replayed,
            stats.database_up,
        )
        self.written, self.spooled = stats.written_rows, stats.spooled_rows
        self.replayed = stats.replayed_rows
        if stats.dropped_rows > self.dropped:
            metrics.store_dropped("spool_full", stats.dropped_rows - self.dropped)
            self.dropped = stats.dropped_rows
        if stage.dropped_rows > self.stage_dropped:
            metrics.store_dropped("queue_full", stage.dropped_rows - self.stage_dropped)
            self.stage_dropped = stage.dropped_rows
        for kind, count in stage.tracker.anomalies.items():
            if count > self.anomalies.get(kind, 0):
                metrics.coil_anomaly(kind, count - self.anomalies.get(kind, 0))
                self.anomalies[kind] = count
        for grade, count in stage.coils_closed.items():
            for _ in range(count - self.coils.get(grade, 0)):
                metrics.coil_closed(grade)
            self.coils[grade] = count
