"""Inference stage: READY slots → batches → the engine → post-processing workers.

Batching reads the slot table, not a queue: a frame waits READY in its slot (where
``drop_oldest`` can still take it) until `Batcher` says its batch is due, then `claim` moves
it to BATCHED. Because nothing waits in a queue between receivers and this process, a
restarted inference process finds every waiting frame where it was; receivers ring a ZeroMQ
doorbell after each commit so an idle engine wakes at once.

Frames of another size than the model's input are cut into the engine's tiles, the tiles of
several frames pooled into engine batches and each frame's probabilities stitched back
(`engines.tiled_engine`): a batch of the batcher then holds as many whole frames as their
tiles fit in ``engine.max_batch`` (at least one), and everything after the engine sees frames
in their own pixels. Cameras of several frame sizes have a slot group each (`daemon.slots`);
each group has its own tile plan and batcher, so a batch holds frames of one size (of any of
the group's cameras) and the engine's input shape never changes.

After `infer`, the GPU's small per-class outputs decide each frame's path (the "clean-frame
fast path"): a frame whose every class is under its presence gate or whose peak is under the
pixel threshold has no defect by construction, so its slot is released here and only its
scores travel on. A frame with candidate classes keeps its slot (INFERRED) and its
candidate classes' probability planes, copied into the message, go to a worker; the N×C×H×W
maps themselves never cross a process boundary. Sends never wait: every message stands for
a slot, and the workers' queues are deeper than the slot pool.
"""

from __future__ import annotations

import logging
import pickle
import time
import zlib
from dataclasses import dataclass
from importlib import metadata

import numpy as np
import numpy.typing as npt
import zmq

from defectd.daemon.accounting import FrameEvent
from defectd.daemon.batcher import Batcher
from defectd.daemon.config import check_model
from defectd.daemon.metrics import Metrics, create_metrics
from defectd.daemon.slots import SlotPool, SlotRef, SlotState
from defectd.daemon.stages.common import Reporter, StageSpec, bind_ipc, start_stage
from defectd.engines.engine import Engine, EngineOutput
from defectd.engines.postprocess import PostprocessConfig
from defectd.engines.selection import open_engine
from defectd.engines.tiled_engine import TiledFrames, TilePlan, plan_frames

log = logging.getLogger(__name__)

POLL_MS = 50  # longest sleep between looks at the slot table and the stop flag


@dataclass(frozen=True)
class Inferred:
    """One frame's engine result on its way to post-processing (a message's first part; the
    probability planes of `candidates` follow as raw parts)."""

    ref: SlotRef
    note: bytes  # the slot's note: capture/receive times, coil, position
    batch_size: int
    presence: tuple[float, ...]
    peak: tuple[float, ...]
    candidates: tuple[int, ...]  # 0-based classes whose H×W planes follow, in order
    dtype: str  # the planes' dtype
    shape: tuple[int, int]  # frame height, width
    held: bool  # the slot is still held (INFERRED): the worker finishes and releases it


def candidate_classes(
    presence: npt.NDArray[np.float64], peak: npt.NDArray[np.float64], config: PostprocessConfig
) -> tuple[int, ...]:
    """0-based classes of one frame that post-processing could keep: presence at or over the
    gate and peak at or over the pixel threshold (the same tests `postprocess` starts with)."""
    return tuple(
        index
        for index, thresholds in enumerate(config.classes)
        if presence[index] >= thresholds.presence and peak[index] >= thresholds.pixel
    )


def worker_for(camera: str, workers: int) -> int:
    """The worker a camera's frames go to: always the same, so its order is kept."""
    return zlib.crc32(camera.encode()) % workers


@dataclass
class _SizePath:
    """What one slot group's frames go through: their tile plan and a staging buffer."""

    shape: tuple[int, int]
    plan: TilePlan
    frames: TiledFrames
    buffer: npt.NDArray[np.uint8]  # frames_per_call × H × W


class Inference:
    """The batch path: claim, stack, infer, route each frame."""

    def __init__(
        self,
        engine: Engine,
        pool: SlotPool,
        thresholds: PostprocessConfig,
        workers: list[zmq.Socket[bytes]],
        reporter: Reporter,
        metrics: Metrics,
        overlap: int = 0,
        fill: int = 0,
    ) -> None:
        self._engine = engine
        self._pool = pool
        self._thresholds = thresholds
        self._workers = workers
        self._reporter = reporter
        self._metrics = metrics
        self._paths = []
        for group in pool.spec.groups:
            shape = (group.height, group.width)
            plan = plan_frames(shape, engine.input.shape, engine.info.max_batch, overlap)
            buffer = np.empty((plan.frames_per_call, *shape), np.uint8)
            self._paths.append(_SizePath(shape, plan, TiledFrames(engine, plan, fill), buffer))

    @property
    def plans(self) -> list[TilePlan]:
        """Each slot group's tile plan, in the pool's group order."""
        return [path.plan for path in self._paths]

    def group_of(self, ref: SlotRef) -> int:
        """The slot group (and so the batcher) a ready frame belongs to."""
        return self._pool.spec.group_of_slot(ref.slot)

    def run_batch(self, batch: list[SlotRef]) -> None:
        """Infer the frames of `batch` (of one slot group) still held (others were dropped
        meanwhile)."""
        claimed = self._pool.claim(batch)
        if not claimed:
            return
        path = self._paths[self.group_of(claimed[0])]
        count = len(claimed)
        notes = []
        for row, ref in enumerate(claimed):
            np.copyto(path.buffer[row], self._pool.frame(ref.slot))
            notes.append(self._pool.note(ref) or b"")
        started = time.perf_counter()
        try:
            output = path.frames.infer(path.buffer[:count])
        except Exception:
            log.exception("engine failed on a batch of %d frames; dropping them", count)
            for ref in claimed:
                if self._pool.release(ref):
                    self._drop(ref, "engine_error")
            return
        self._metrics.batch_done(count, time.perf_counter() - started)
        self._route(claimed, notes, output, path.shape)

    def _route(
        self,
        claimed: list[SlotRef],
        notes: list[bytes],
        output: EngineOutput,
        shape: tuple[int, int],
    ) -> None:
        presence = np.asarray(output.presence, np.float64)
        peak = np.asarray(output.peak, np.float64)
        for row, ref in enumerate(claimed):
            candidates = candidate_classes(presence[row], peak[row], self._thresholds)
            held = bool(candidates)
            if held:
                if not self._pool.advance(ref, SlotState.INFERRED):
                    continue
            elif not self._pool.release(ref):
                continue
            item = Inferred(
                ref=ref,
                note=notes[row],
                batch_size=len(claimed),
                presence=tuple(presence[row].tolist()),
                peak=tuple(peak[row].tolist()),
                candidates=candidates,
                dtype=str(output.probs.dtype),
                shape=shape,
                held=held,
            )
            # Copied into the message (copy=True): an engine may reuse its output buffers.
            planes = [np.ascontiguousarray(output.probs[row, index]).data for index in candidates]
            socket = self._workers[worker_for(ref.meta.camera, len(self._workers))]
            socket.send_multipart([pickle.dumps(item), *planes], copy=True)

    def _drop(self, ref: SlotRef, reason: str) -> None:
        meta = ref.meta
        self._metrics.frame_dropped(meta.camera, reason)
        self._reporter.frame(FrameEvent("dropped", meta.camera, meta.seq, time.monotonic(), reason))


def _runtime_version(backend: str) -> str:
    package = {"onnxruntime": "onnxruntime", "torch": "torch", "tensorrt": "tensorrt"}.get(backend)
    if package is None:
        return "none"
    for name in (package, f"{package}-gpu"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


def run_inference(spec: StageSpec) -> None:
    """Entry point of the inference process: open and warm the engine, then batch until
    SIGTERM (what is pending then is still run)."""
    stop = start_stage(spec)
    config = spec.config
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    reporter = Reporter(context, spec)
    pool = SlotPool.attach(spec.pool)
    metrics = create_metrics([camera.id for camera in config.cameras])
    doorbell = context.socket(zmq.PULL)
    doorbell.setsockopt(zmq.LINGER, 0)
    bind_ipc(doorbell, spec.paths.doorbell)
    workers = []
    for index in range(config.postprocess.workers):
        socket = context.socket(zmq.PUSH)
        # Every message holds a slot or stands for one just released: with a queue deeper than
        # the pool, a slow worker can never make this process wait.
        socket.setsockopt(zmq.SNDHWM, 4 * spec.pool.count + 16)
        socket.setsockopt(zmq.LINGER, 2000)
        socket.connect(spec.paths.worker(index))
        workers.append(socket)
    model = check_model(config, verify=False)
    thresholds = model.thresholds
    engine = open_engine(config.model.dir, config.engine, config.frame_format)
    fill = round(float(model.card.normalisation.get("mean", 0.0)) * 255.0)
    overlap = config.batching.tile_overlap
    try:
        metrics.engine_loaded(engine.info, _runtime_version(engine.info.backend))
        reporter.ready(engine.info)
        log.info("inference ready: %s", engine.info.describe())
        stage = Inference(engine, pool, thresholds, workers, reporter, metrics, overlap, fill)
        for group, plan in zip(pool.spec.groups, stage.plans, strict=True):
            if not plan.whole:
                log.info(
                    "frames %d×%d are cut into %d tiles of the model's %d×%d (overlap %d px); "
                    "%d frame(s) per engine batch of up to %d tiles",
                    group.width,
                    group.height,
                    plan.tiles,
                    engine.input.width,
                    engine.input.height,
                    overlap,
                    plan.frames_per_call,
                    engine.info.max_batch,
                )
        batchers: list[Batcher[SlotRef]] = [
            Batcher(plan.frames_per_call, config.batching.max_wait_ms) for plan in stage.plans
        ]
        seen = 0  # newest commit ticket handed to the batcher
        while not stop.requested:
            deadlines = [d for b in batchers if (d := b.next_deadline()) is not None]
            wait = reporter.wait_ms(POLL_MS)
            if deadlines:
                wait = int(min(wait, max(0.0, (min(deadlines) - time.monotonic()) * 1000)))
            if doorbell.poll(wait):
                while True:
                    try:
                        doorbell.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
            else:
                reporter.flush_if_pending()
            for ticket, ref in pool.ready():
                if ticket > seen:  # it has waited since it arrived
                    batchers[stage.group_of(ref)].add(ref, now=ref.meta.received)
                    seen = ticket
            metrics.queue("batcher", sum(len(b) for b in batchers))
            for batcher in batchers:
                while (batch := batcher.poll()) is not None:
                    stage.run_batch(batch)
            reporter.maybe_flush()
        for batcher in batchers:
            for batch in batcher.flush():
                stage.run_batch(batch)
    finally:
        engine.close()
        reporter.flush(final=True)
        reporter.close()
        for socket in workers:
            socket.close()
        doorbell.close(linger=0)
        pool.close()
        context.term()
