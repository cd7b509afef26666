"""Every Prometheus metric defectd exports, defined in one place (docs/metrics.md).

defectd runs as several processes (supervisor, receivers, inference, post-processing workers,
publisher), so prometheus_client runs in **multiprocess mode**: each process writes its values
to memory-mapped files in ``$PROMETHEUS_MULTIPROC_DIR`` and the supervisor's HTTP server merges
them with `MultiProcessCollector` on every scrape (`render`).

Start-up order: `defectd run` enters `metrics_mode.multiprocess_mode` (it prepares the
directory and exports ``PROMETHEUS_MULTIPROC_DIR``) before this module is imported, so this
process and the spawned children all import prometheus_client in multiprocess mode; then
`create_metrics(cameras)` runs in every process, once; the supervisor also calls `init_series`.

When a child exits, the supervisor calls `mark_process_dead(pid, path)` so the ``live*``
gauges forget it. Counters and histograms of dead processes stay in the sum, as they should.

Each gauge's ``multiprocess_mode`` is chosen for what it measures (see `create_metrics`).
Info metrics do not work in multiprocess mode, so ``*_info`` are gauges set to 1.
"""

from __future__ import annotations

import glob
import logging
import os
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as _multiprocess

from defectd.daemon.accounting import DROP_REASONS
from defectd.daemon.protocol import REJECT_REASONS

if TYPE_CHECKING:
    from defectd.daemon.sequence import SeqOutcome
    from defectd.daemon.shadow.compare import ClassAgreement
    from defectd.engines.engine import EngineInfo

log = logging.getLogger(__name__)

PREFIX = "defectd_"
# The text format `generate_latest` writes (prometheus_client's constant for it was renamed
# between versions, so it is spelled out here).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# A frame is dropped either by the protocol checks (why the message was rejected) or by the
# pipeline (why an accepted frame was given up). Ordered union; no reason is in both.
DROP_LABELS: tuple[str, ...] = tuple(dict.fromkeys((*REJECT_REASONS, *DROP_REASONS)))
LATENCY_KINDS = ("capture_to_publish", "receive_to_publish")
# EngineInfo.labels() plus the backend runtime's version.
ENGINE_INFO_LABELS = ("backend", "device", "precision", "max_batch", "model", "version")
# defectd_auth_rejected_total's labels (daemon.curve keeps the same tuples; it imports zmq).
AUTH_SOCKETS = ("ingest", "events")
AUTH_REASONS = ("unknown_key", "bad_handshake")
# Camera ids are untrusted until checked against the config: anything else is counted under
# this label value, which no camera id can take (parentheses are not allowed in ids).
UNKNOWN_CAMERA = "(unknown)"

BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
RELOAD_OUTCOMES = ("applied", "unchanged", "refused")
SWAP_FAILURES = ("card", "classes", "memory", "open", "golden")
GaugeMode = Literal["livemax", "livesum", "max"]  # the modes `create_metrics` uses
# 1 ms .. 10 s: a TensorRT batch takes milliseconds, a CPU batch of 16 can take seconds.
SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def mark_process_dead(pid: int, path: str | os.PathLike[str]) -> None:
    """Forget the ``live*`` gauges of a child that exited (after it was joined)."""
    _multiprocess.mark_process_dead(pid, os.fspath(path))  # type: ignore[no-untyped-call]


def render(registry_dir: str | os.PathLike[str]) -> bytes:
    """The merged exposition of every process's metrics, in the text format (`CONTENT_TYPE`).

    A fresh registry each time, holding only the collector: a registry that also held this
    process's metrics would export them twice.
    """
    registry = CollectorRegistry()
    _multiprocess.MultiProcessCollector(registry, os.fspath(registry_dir))  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def metric_files(registry_dir: str | os.PathLike[str]) -> list[str]:
    """The per-process files in the directory (for diagnostics and tests)."""
    return sorted(glob.glob(os.path.join(os.fspath(registry_dir), "*.db")))


@dataclass
class Metrics:
    """The metric objects of one process, with helpers that keep label values bounded.

    Create it with `create_metrics`, once per process: two instances in one process would
    overwrite each other's values in the shared file.
    """

    cameras: frozenset[str]
    wall_clock: Callable[[], float]

    frames_received: Counter
    frames_processed: Counter
    frames_dropped: Counter
    frames_lost: Counter
    frames_out_of_order: Counter
    camera_resets: Counter
    defects: Counter
    worker_restarts: Counter
    auth_rejected: Counter
    store_rows: Counter
    store_spooled: Counter
    store_replayed: Counter
    store_dropped_rows: Counter
    coils_closed: Counter
    coil_anomalies: Counter
    output_delivered: Counter
    output_dropped: Counter
    reloads: Counter
    model_swaps: Counter
    shadow_frames: Counter
    shadow_pixels: Counter
    shadow_found: Counter
    shadow_skipped: Counter

    batch_size: Histogram
    inference_seconds: Histogram
    latency_seconds: Histogram

    slots_in_use: Gauge
    slots_capacity: Gauge
    queue_depth: Gauge
    ready: Gauge
    last_frame_timestamp: Gauge
    engine_info: Gauge
    build_info: Gauge
    store_up: Gauge
    output_buffered: Gauge
    output_connected: Gauge
    config_generation: Gauge
    camera_configured: Gauge
    model_swap_failed: Gauge
    shadow_info: Gauge

    def set_cameras(self, cameras: Iterable[str]) -> None:
        """The configured camera ids after a reload (cameras added get their own series)."""
        self.cameras = frozenset(cameras)

    def camera_label(self, camera: str | None) -> str:
        """`camera` if it is configured, else `UNKNOWN_CAMERA` (bounds the label's values)."""
        return camera if camera is not None and camera in self.cameras else UNKNOWN_CAMERA

    # -- frames ------------------------------------------------------------------------

    def frame_received(self, camera: str) -> None:
        """A receiver read a frame of `camera` (also stamps its last-frame time)."""
        label = self.camera_label(camera)
        self.frames_received.labels(camera=label).inc()
        self.last_frame_timestamp.labels(camera=label).set(self.wall_clock())

    def frame_processed(self, camera: str) -> None:
        """A frame went all the way through the pipeline."""
        self.frames_processed.labels(camera=self.camera_label(camera)).inc()

    def frame_dropped(self, camera: str | None, reason: str, count: int = 1) -> None:
        """`count` frames given up for `reason` (a protocol reject reason or a drop reason).

        `camera` is None when the message was too broken to name one.
        """
        if reason not in DROP_LABELS:
            raise ValueError(f"unknown drop reason {reason!r}; choose from {DROP_LABELS}")
        self.frames_dropped.labels(camera=self.camera_label(camera), reason=reason).inc(count)

    def sequence(self, camera: str, outcome: SeqOutcome) -> None:
        """Count what the sequence tracker saw in a frame's seq: lost frames, restarts."""
        label = self.camera_label(camera)
        if outcome.kind == "gap":
            self.frames_lost.labels(camera=label).inc(outcome.lost)
        elif outcome.kind == "out_of_order":
            self.frames_out_of_order.labels(camera=label).inc()
        elif outcome.kind == "reset":
            self.camera_resets.labels(camera=label).inc()

    def defects_found(self, camera: str, class_name: str, count: int = 1) -> None:
        """`count` defect events of `class_name` (a model class) published for `camera`."""
        self.defects.labels(camera=self.camera_label(camera), class_name=class_name).inc(count)

    def handshake_rejected(self, socket: str, reason: str) -> None:
        """A CURVE server socket (`AUTH_SOCKETS`) refused a client's handshake, for `reason`
        (`AUTH_REASONS`: a key not in the allow-list, or no CURVE / a bad key)."""
        if socket not in AUTH_SOCKETS or reason not in AUTH_REASONS:
            raise ValueError(f"unknown auth label {socket!r}/{reason!r}")
        self.auth_rejected.labels(socket=socket, reason=reason).inc()

    # -- timing ------------------------------------------------------------------------

    def batch_done(self, size: int, seconds: float) -> None:
        """One engine call: its batch size and how long `infer` took."""
        self.batch_size.observe(size)
        self.inference_seconds.observe(seconds)

    def latency(self, kind: str, seconds: float) -> None:
        """A published frame's latency of `kind` (one of `LATENCY_KINDS`)."""
        if kind not in LATENCY_KINDS:
            raise ValueError(f"unknown latency kind {kind!r}; choose from {LATENCY_KINDS}")
        # A camera clock ahead of ours gives a negative capture latency; a negative
        # observation would make the histogram's _sum go backwards.
        self.latency_seconds.labels(kind=kind).observe(max(seconds, 0.0))

    # -- state -------------------------------------------------------------------------

    def slots(self, in_use: int, total: int) -> None:
        """The slot pool's occupancy (sampled from the shared slot table)."""
        self.slots_in_use.set(in_use)
        self.slots_capacity.set(total)

    def queue(self, name: str, depth: int) -> None:
        """Items waiting in queue `name` as seen by this process."""
        self.queue_depth.labels(queue=name).set(depth)

    def set_ready(self, ready: bool) -> None:
        """Whether the daemon is ready (what ``/readyz`` says)."""
        self.ready.set(1 if ready else 0)

    def store_dropped(self, reason: str, rows: int) -> None:
        """Rows the store never got: ``queue_full`` (a stage's queue), ``spool_full``."""
        self.store_dropped_rows.labels(reason=reason).inc(rows)

    def store_progress(self, written: int, spooled: int, replayed: int, up: bool) -> None:
        """Rows the store writer wrote, spooled and replayed since the last call; its state."""
        if written:
            self.store_rows.inc(written)
        if spooled:
            self.store_spooled.inc(spooled)
        if replayed:
            self.store_replayed.inc(replayed)
        self.store_up.set(1 if up else 0)

    def coil_closed(self, grade: str) -> None:
        self.coils_closed.labels(grade=grade).inc()

    def coil_anomaly(self, kind: str, count: int) -> None:
        """Bad input the coil tracker counted: coil_back, seq_back, position_back, ..."""
        self.coil_anomalies.labels(kind=kind).inc(count)

    def output_progress(
        self,
        output: str,
        delivered: int,
        dropped: dict[str, int],
        buffered: int,
        connected: bool,
    ) -> None:
        """An output stage's counts since the last call, and its state."""
        if delivered:
            self.output_delivered.labels(output=output).inc(delivered)
        for reason, count in dropped.items():
            if count:
                self.output_dropped.labels(output=output, reason=reason).inc(count)
        self.output_buffered.labels(output=output).set(buffered)
        self.output_connected.labels(output=output).set(1 if connected else 0)

    def worker_restarted(self, kind: str) -> None:
        """The supervisor started a replacement for a dead child of `kind`."""
        self.worker_restarts.labels(kind=kind).inc()

    def engine_loaded(self, info: EngineInfo, version: str) -> None:
        """What the inference process runs; `version` is the backend runtime's version."""
        self.engine_info.labels(**info.labels(), version=version).set(1)

    def engine_unloaded(self, info: EngineInfo, version: str) -> None:
        """A model swap closed the engine `info`: its info series goes to 0."""
        self.engine_info.labels(**info.labels(), version=version).set(0)

    def reloaded(self, outcome: str, generation: int) -> None:
        """A reload was `outcome` (applied, unchanged, refused); `generation` runs now."""
        self.reloads.labels(outcome=outcome).inc()
        self.config_generation.set(generation)

    def model_swapped(self, ok: bool, reason: str = "") -> None:
        """A model swap ended: ok, or failed for `reason` (card, classes, memory, open,
        golden); ``model_swap_failed`` stays 1 from a failure to the next good swap."""
        if ok:
            self.model_swaps.labels(outcome="ok", reason="").inc()
        else:
            self.model_swaps.labels(outcome="failed", reason=reason).inc()
        self.model_swap_failed.set(0 if ok else 1)

    def shadow_running(self, live: str, shadow: str, running: bool) -> None:
        """A shadow run of `shadow` beside `live` started (or ended)."""
        self.shadow_info.labels(live_model=live, shadow_model=shadow).set(1 if running else 0)

    def shadow_compared(self, rows: Iterable[ClassAgreement], classes: tuple[str, ...]) -> None:
        """One frame compared by the shadow run, class by class."""
        self.shadow_frames.inc()
        for row in rows:
            name = classes[row.class_id - 1]
            self.shadow_pixels.labels(class_name=name, kind="live").inc(row.live_px)
            self.shadow_pixels.labels(class_name=name, kind="shadow").inc(row.shadow_px)
            self.shadow_pixels.labels(class_name=name, kind="both").inc(row.both_px)
            if row.live_found and row.shadow_found:
                self.shadow_found.labels(class_name=name, outcome="both").inc()
            elif row.live_found:
                self.shadow_found.labels(class_name=name, outcome="live_only").inc()
            elif row.shadow_found:
                self.shadow_found.labels(class_name=name, outcome="shadow_only").inc()

    def set_build_info(self, version: str, python: str) -> None:
        """defectd's version and the Python version (supervisor, once)."""
        self.build_info.labels(version=version, python=python).set(1)

    def init_cameras(
        self, cameras: Iterable[str], classes: Iterable[str], now: float | None = None
    ) -> None:
        """Create `cameras`' series at 0, their last-frame time at `now` (default: the wall
        clock): at start for every camera, on a reload for the cameras it added (so "camera
        silent" fires for one that never sends; the others' times are left alone)."""
        stamp = self.wall_clock() if now is None else now
        classes = tuple(classes)
        for camera in cameras:
            for counter in (
                self.frames_received,
                self.frames_processed,
                self.frames_lost,
                self.frames_out_of_order,
                self.camera_resets,
            ):
                counter.labels(camera=camera)
            for reason in DROP_LABELS:
                self.frames_dropped.labels(camera=camera, reason=reason)
            for class_name in classes:
                self.defects.labels(camera=camera, class_name=class_name)
            self.last_frame_timestamp.labels(camera=camera).set(stamp)
            self.camera_configured.labels(camera=camera).set(1)

    def camera_removed(self, camera: str) -> None:
        """A reload removed `camera`: its "camera silent" alert is off (supervisor)."""
        self.camera_configured.labels(camera=camera).set(0)

    def init_series(
        self, classes: Iterable[str] = (), kinds: Iterable[str] = (), now: float | None = None
    ) -> None:
        """Create every known series at 0 (supervisor, once at start).

        Series that appear only on their first event break ``rate()`` and hide "never happened"
        from alerts. Each configured camera's last-frame time starts at `now` (default: the
        wall clock), so "camera silent for 10 s" also fires for a camera that never sent.
        """
        classes = tuple(classes)
        self.init_cameras(sorted(self.cameras), classes, now)
        for reason in REJECT_REASONS:  # messages that name no configured camera
            self.frames_dropped.labels(camera=UNKNOWN_CAMERA, reason=reason)
        for kind in kinds:
            self.worker_restarts.labels(kind=kind)
        for socket in AUTH_SOCKETS:
            for reason in AUTH_REASONS:
                self.auth_rejected.labels(socket=socket, reason=reason)
        for latency_kind in LATENCY_KINDS:
            self.latency_seconds.labels(kind=latency_kind)
        for outcome in RELOAD_OUTCOMES:
            self.reloads.labels(outcome=outcome)
        self.model_swaps.labels(outcome="ok", reason="")
        for reason in SWAP_FAILURES:
            self.model_swaps.labels(outcome="failed", reason=reason)
        self.model_swap_failed.set(0)
        self.config_generation.set(0)
        for class_name in classes:
            for kind in ("live", "shadow", "both"):
                self.shadow_pixels.labels(class_name=class_name, kind=kind)
            for found in ("both", "live_only", "shadow_only"):
                self.shadow_found.labels(class_name=class_name, outcome=found)


def create_metrics(
    cameras: Collection[str],
    *,
    registry: CollectorRegistry | None = None,
    wall_clock: Callable[[], float] = time.time,
) -> Metrics:
    """This process's metrics; `cameras` are the configured camera ids.

    `registry` is None in the daemon: in multiprocess mode the values live in files and
    `render` collects them, so registering them anywhere would only export them twice. Tests
    and single-process tools pass a `CollectorRegistry` and call `generate_latest` on it.

    Gauge modes (how the supervisor merges one gauge written by several processes):

    - ``livemax`` for values the supervisor samples once for the whole daemon (slot occupancy,
      readiness) or that one process owns (the engine): several writers agree on the value,
      so max never double counts, and a dead writer's stale value goes with it.
    - ``livesum`` for queue depths: each process reports the part it holds; the sum is the
      backlog, and a dead process's part disappears with its queue.
    - ``max`` for the last-frame time: a receiver that died still saw that frame, and a
      series that vanished with it would silence the "camera silent" alert just when the
      camera's receiver is being restarted. Also for constants (slot count, build info).
    - ``liveall`` is not used: it adds a ``pid`` label, so every restart starts new series and
      every query needs ``sum without (pid)``.
    """

    def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter:
        return Counter(PREFIX + name, doc, labels, registry=registry)

    def gauge(name: str, doc: str, labels: tuple[str, ...], mode: GaugeMode) -> Gauge:
        return Gauge(PREFIX + name, doc, labels, registry=registry, multiprocess_mode=mode)

    def histogram(
        name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]
    ) -> Histogram:
        return Histogram(PREFIX + name, doc, labels, registry=registry, buckets=buckets)

    camera = ("camera",)
    return Metrics(
        cameras=frozenset(cameras),
        wall_clock=wall_clock,
        frames_received=counter("frames_received", "Frames read from camera sockets.", camera),
        frames_processed=counter(
            "frames_processed", "Frames that went all the way through the pipeline.", camera
        ),
        frames_dropped=counter(
            "frames_dropped",
            "Frames given up, by reason: a protocol reject reason or a pipeline drop reason.",
            ("camera", "reason"),
        ),
        frames_lost=counter(
            "frames_lost",
            "Frames missing from a camera's sequence numbers (never arrived).",
            camera,
        ),
        frames_out_of_order=counter(
            "frames_out_of_order", "Frames whose seq was not ahead of the newest seen.", camera
        ),
        camera_resets=counter(
            "camera_resets", "Times a camera restarted its sequence numbering.", camera
        ),
        defects=counter(
            "defects", "Defect events published, by camera and class.", ("camera", "class_name")
        ),
        worker_restarts=counter(
            "worker_restarts", "Children the supervisor restarted after they died.", ("kind",)
        ),
        auth_rejected=counter(
            "auth_rejected",
            "Client handshakes a CURVE server socket refused (security.curve), by socket and "
            "reason.",
            ("socket", "reason"),
        ),
        batch_size=histogram(
            "batch_size", "Frames per engine call.", (), tuple(map(float, BATCH_SIZE_BUCKETS))
        ),
        inference_seconds=histogram(
            "inference_seconds", "Duration of one engine call (a batch).", (), SECONDS_BUCKETS
        ),
        latency_seconds=histogram(
            "latency_seconds",
            "Frame latency at publish: from camera capture (camera clock) or from receipt.",
            ("kind",),
            SECONDS_BUCKETS,
        ),
        slots_in_use=gauge("slots_in_use", "Shared-memory frame slots not free.", (), "livemax"),
        slots_capacity=gauge("slots_capacity", "Shared-memory frame slots in the pool.", (), "max"),
        queue_depth=gauge(
            "queue_depth", "Items waiting in an inter-process queue.", ("queue",), "livesum"
        ),
        ready=gauge(
            "ready", "1 when the engine is warmed up and every stage runs, else 0.", (), "livemax"
        ),
        last_frame_timestamp=gauge(
            "last_frame_timestamp_seconds",
            "Unix time of the newest frame received per camera (daemon start until the first).",
            camera,
            "max",
        ),
        engine_info=gauge(
            "engine_info", "The inference engine in use (value 1).", ENGINE_INFO_LABELS, "livemax"
        ),
        build_info=gauge("build_info", "defectd build (value 1).", ("version", "python"), "max"),
        store_rows=counter("store_rows", "Rows written to the defect store.", ()),
        store_spooled=counter(
            "store_spooled_rows", "Rows spooled to disk while the database was unreachable.", ()
        ),
        store_replayed=counter(
            "store_replayed_rows", "Spooled rows written once the database answered again.", ()
        ),
        store_dropped_rows=counter(
            "store_dropped", "Rows the defect store never got, by reason.", ("reason",)
        ),
        coils_closed=counter("coils_closed", "Coils closed, by grade.", ("grade",)),
        coil_anomalies=counter(
            "coil_anomalies",
            "Frames the coil tracker took with bad input (coil id back, seq or position back, "
            "no position), by kind.",
            ("kind",),
        ),
        output_delivered=counter(
            "output_delivered",
            "Events an output (web, mqtt, opcua) passed on to its consumers.",
            ("output",),
        ),
        output_dropped=counter(
            "output_dropped",
            "Events an output never delivered, by reason (feed: fell behind the daemon; "
            "buffer_full: its consumer was away too long; shutdown: still queued at stop; "
            "refused; error).",
            ("output", "reason"),
        ),
        output_buffered=gauge(
            "output_buffered",
            "Events an output holds for a consumer that is away.",
            ("output",),
            "livemax",
        ),
        output_connected=gauge(
            "output_connected",
            "1 while an output's broker, server or listener is up.",
            ("output",),
            "livemax",
        ),
        reloads=counter(
            "reloads",
            "Config reloads (defectd reload, SIGHUP), by outcome: applied, unchanged, refused "
            "(invalid config; the running one kept).",
            ("outcome",),
        ),
        camera_configured=gauge(
            "camera_configured",
            "1 for each camera in the running config, 0 for one a reload removed (the camera "
            "silent alert looks only at configured cameras).",
            camera,
            "livemax",
        ),
        config_generation=gauge(
            "config_generation", "Config reloads applied since the daemon started.", (), "livemax"
        ),
        model_swaps=counter(
            "model_swaps",
            "Model swaps, by outcome (ok, failed) and why one failed (card, classes, memory, "
            "open, golden).",
            ("outcome", "reason"),
        ),
        model_swap_failed=gauge(
            "model_swap_failed",
            "1 from a failed model swap (the old model kept serving) to the next good one.",
            (),
            "livemax",
        ),
        shadow_frames=counter(
            "shadow_frames", "Live frames the shadow model ran on and was compared on.", ()
        ),
        shadow_pixels=counter(
            "shadow_pixels",
            "Defect pixels on shadow-compared frames, by class and kind: live (the live model "
            "marks), shadow (the shadow marks), both.",
            ("class_name", "kind"),
        ),
        shadow_found=counter(
            "shadow_found",
            "Shadow-compared frames where a class was found, by outcome: both, live_only, "
            "shadow_only.",
            ("class_name", "outcome"),
        ),
        shadow_skipped=counter(
            "shadow_skipped", "Frames picked for the shadow but skipped: its queue was full.", ()
        ),
        shadow_info=gauge(
            "shadow_info",
            "The shadow run in progress (value 1): the live and the shadow model.",
            ("live_model", "shadow_model"),
            "livemax",
        ),
        store_up=gauge(
            "store_up", "1 while the defect store's database takes writes, else 0.", (), "livemax"
        ),
    )
