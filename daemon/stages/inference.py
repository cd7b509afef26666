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
import os
import pickle
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path

import numpy as np
import numpy.typing as npt
import zmq

from defectd.daemon.accounting import FrameEvent
from defectd.daemon.batcher import Batcher
from defectd.daemon.config import ConfigError, DaemonConfig, check_model, effective_thresholds
from defectd.daemon.control import SwapOutcome
from defectd.daemon.metrics import Metrics, create_metrics
from defectd.daemon.shadow.runner import ShadowFrame, ShadowRunner, ShadowSampler
from defectd.daemon.shadow.store import ShadowStore
from defectd.daemon.slots import SlotPool, SlotRef, SlotState
from defectd.daemon.stages.common import ControlInbox, Reporter, StageSpec, bind_ipc, start_stage
from defectd.daemon.stages.model_swap import (
    Loaded,
    ModelLoader,
    ServingModel,
    SwapError,
    open_model,
    torch_cuda_footprint,
)
from defectd.daemon.stages.receiver import FrameNote
from defectd.engines.engine import EngineOutput
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
    model: str  # "name version" of the model that inferred it
    thresholds: PostprocessConfig  # that model's effective thresholds when it did


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
    """The batch path of one serving model: claim, stack, infer, route each frame."""

    def __init__(
        self,
        model: ServingModel,
        pool: SlotPool,
        workers: list[zmq.Socket[bytes]],
        reporter: Reporter,
        metrics: Metrics,
        overlap: int = 0,
        fill: int = 0,
    ) -> None:
        self.model = model
        self.thresholds = model.thresholds  # `model.thresholds` reloads change it live
        self.shadow: ShadowRunner | None = None
        self.sampler: ShadowSampler | None = None
        self._pool = pool
        self._workers = workers
        self._reporter = reporter
        self._metrics = metrics
        engine = model.engine
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
        if self.shadow is not None and self.sampler is not None:
            self._offer_shadow(claimed, notes, output, path.buffer)

    def _route(
        self,
        claimed: list[SlotRef],
        notes: list[bytes],
        output: EngineOutput,
        shape: tuple[int, int],
    ) -> None:
        presence = np.asarray(output.presence, np.float64)
        peak = np.asarray(output.peak, np.float64)
        label = self.model.label
        for row, ref in enumerate(claimed):
            candidates = candidate_classes(presence[row], peak[row], self.thresholds)
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
                model=label,
                thresholds=self.thresholds,
            )
            # Copied into the message (copy=True): an engine may reuse its output buffers.
            planes = [np.ascontiguousarray(output.probs[row, index]).data for index in candidates]
            socket = self._workers[worker_for(ref.meta.camera, len(self._workers))]
            socket.send_multipart([pickle.dumps(item), *planes], copy=True)

    def _offer_shadow(
        self,
        claimed: list[SlotRef],
        notes: list[bytes],
        output: EngineOutput,
        buffer: npt.NDArray[np.uint8],
    ) -> None:
        assert self.shadow is not None and self.sampler is not None
        for row, ref in enumerate(claimed):
            if not self.sampler.take():
                continue
            note = FrameNote.decode(notes[row]) if notes[row] else None
            self.shadow.offer(
                ShadowFrame(
                    camera=ref.meta.camera,
                    seq=ref.meta.seq,
                    capture_ns=note.capture_ns if note else 0,
                    pixels=np.array(buffer[row]),
                    probs=np.array(output.probs[row]),
                    presence=tuple(np.asarray(output.presence[row], np.float64).tolist()),
                    peak=tuple(np.asarray(output.peak[row], np.float64).tolist()),
                    thresholds=self.thresholds,
                )
            )

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
    SIGTERM (what is pending then is still run). A `Reconfigure` changes thresholds and
    batching at once and swaps models or starts a shadow run in the background
    (`InferenceLoop`)."""
    stop = start_stage(spec)
    config = spec.config
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    reporter = Reporter(context, spec)
    pool = SlotPool.attach(spec.pool)
    metrics = create_metrics([camera.id for camera in config.cameras])
    doorbell = context.socket(zmq.PULL)
    doorbell.setsockopt(zmq.LINGER, 0)
    bind_ipc(doorbell, spec.paths.doorbell)
    control = ControlInbox(context, spec)
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
    engine = open_engine(config.model.dir, config.engine, config.frame_format)
    serving = ServingModel(engine, model.card, model.thresholds, config)
    loop = InferenceLoop(config, pool, workers, reporter, metrics, serving)
    try:
        metrics.engine_loaded(engine.info, _runtime_version(engine.info.backend))
        reporter.ready(engine.info)
        log.info("inference ready: %s", engine.info.describe())
        loop.start_shadow(config)
        seen = 0  # newest commit ticket handed to the batcher
        while not stop.requested:
            wait = loop.wait_ms(reporter.wait_ms(POLL_MS))
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
                    loop.add(ref)
                    seen = ticket
            loop.run_due()
            update = control.poll()
            if update is not None:
                loop.reconfigure(update.config, update.generation)
            loop.check_loaders()  # a swap happens here: between two batches
            reporter.maybe_flush()
        loop.flush()
    finally:
        loop.close()
        reporter.flush(final=True)
        reporter.close()
        for socket in workers:
            socket.close()
        doorbell.close(linger=0)
        control.close()
        pool.close()
        context.term()


class InferenceLoop:
    """The serving model's `Inference` and batchers, and the changes a reload brings.

    A model swap: `reconfigure` starts the candidate's `ModelLoader`; `check_loaders`, called
    between batches, switches to it once it is open, warm and checked: frames pending in the
    old batchers move to the new ones (their waits kept), the old engine closes. A frame is
    claimed by exactly one batch and run by exactly one engine, so none is lost or inferred
    twice. A failed candidate leaves the old engine serving.
    """

    def __init__(
        self,
        config: DaemonConfig,
        pool: SlotPool,
        workers: list[zmq.Socket[bytes]],
        reporter: Reporter,
        metrics: Metrics,
        serving: ServingModel,
    ) -> None:
        self.config = config
        self._pool = pool
        self._workers = workers
        self._reporter = reporter
        self._metrics = metrics
        self._generation = reporter.generation
        self._loader = ModelLoader(self._open_candidate)
        self._shadow_loader = ModelLoader(self._open_shadow)
        self._wanted: tuple[DaemonConfig, int] | None = None  # a swap waiting for the loader
        self._shadow_wanted: DaemonConfig | None = None
        self.stage = self._stage(serving)
        self.batchers: list[Batcher[SlotRef]] = [
            Batcher(plan.frames_per_call, config.batching.max_wait_ms) for plan in self.stage.plans
        ]
        self._log_plans()

    def _stage(self, serving: ServingModel) -> Inference:
        card = serving.card
        fill = round(float(card.normalisation.get("mean", 0.0)) * 255.0)
        overlap = self.config.batching.tile_overlap
        return Inference(
            serving, self._pool, self._workers, self._reporter, self._metrics, overlap, fill
        )

    def _log_plans(self) -> None:
        engine = self.stage.model.engine
        for group, plan in zip(self._pool.spec.groups, self.stage.plans, strict=True):
            if not plan.whole:
                log.info(
                    "frames %d×%d are cut into %d tiles of the model's %d×%d (overlap %d px); "
                    "%d frame(s) per engine batch of up to %d tiles",
                    group.width,
                    group.height,
                    plan.tiles,
                    engine.input.width,
                    engine.input.height,
                    self.config.batching.tile_overlap,
                    plan.frames_per_call,
                    engine.info.max_batch,
                )

    # -- batching ----------------------------------------------------------------------

    def wait_ms(self, wait: int) -> int:
        """How long the loop may sleep: `wait`, or less when a batch falls due sooner."""
        deadlines = [d for b in self.batchers if (d := b.next_deadline()) is not None]
        if self._loader.busy or self._shadow_loader.busy:
            wait = min(wait, POLL_MS)
        if deadlines:
            wait = int(min(wait, max(0.0, (min(deadlines) - time.monotonic()) * 1000)))
        return wait

    def add(self, ref: SlotRef) -> None:
        self.batchers[self.stage.group_of(ref)].add(ref, now=ref.meta.received)

    def run_due(self) -> None:
        self._metrics.queue("batcher", sum(len(b) for b in self.batchers))
        for batcher in self.batchers:
            while (batch := batcher.poll()) is not None:
                self.stage.run_batch(batch)

    def flush(self) -> None:
        for batcher in self.batchers:
            for batch in batcher.flush():
                self.stage.run_batch(batch)

    # -- reloads -----------------------------------------------------------------------

    def reconfigure(self, config: DaemonConfig, generation: int) -> None:
        """Apply `config` (generation `generation`): thresholds and batching now, a model
        swap and a shadow run in the background."""
        previous, self.config = self.config, config
        self._metrics.set_cameras(camera.id for camera in config.cameras)
        for batcher in self.batchers:
            batcher.max_wait_ms = config.batching.max_wait_ms
        serving = self.stage.model
        if serving.same_engine(config):
            self._wanted = None
            self.stage.thresholds = self._thresholds(serving, config)
        else:
            log.info(
                "model swap requested: %s (%s) while %s serves",
                config.model.dir,
                config.engine.backend,
                serving.label,
            )
            self._wanted = (config, generation)
            self._start_swap()
        if config.shadow != previous.shadow:
            self.start_shadow(config)
        self._generation = generation
        self._reporter.applied(generation)

    def _thresholds(self, serving: ServingModel, config: DaemonConfig) -> PostprocessConfig:
        try:
            return effective_thresholds(serving.card, config.model.thresholds, config.source)
        except ConfigError as exc:  # the supervisor checked them against the target model
            log.warning("thresholds not applied to %s: %s", serving.label, exc)
            return self.stage.thresholds

    def _open_candidate(self, config: DaemonConfig) -> ServingModel:
        serving = self.stage.model
        footprint = torch_cuda_footprint if serving.engine.info.backend == "torch" else None
        return open_model(config, classes=tuple(serving.card.classes), footprint=footprint)

    def _start_swap(self) -> None:
        if self._wanted is not None and not self._loader.busy:
            config, generation = self._wanted
            self._wanted = None
            self._loader.start(config, generation)

    def check_loaders(self) -> None:
        """Take a candidate or a shadow model that finished loading (between batches)."""
        done = self._loader.poll()
        if done is not None:
            self._loaded(done)
            self._start_swap()
        shadow = self._shadow_loader.poll()
        if shadow is not None:
            self._shadow_ready(shadow)

    def _loaded(self, done: Loaded) -> None:
        wanted = self._wanted
        if wanted is not None and _same_target(wanted[0], done.config):
            # The same model asked for again while it loaded: this load answers both.
            self._wanted = None
            self._outcome(done, done.generation)
            self._outcome(done, wanted[1], repeat=True)
        elif wanted is not None or not _same_target(done.config, self.config):
            # A later reload asked for another model (or the serving one) meanwhile.
            if done.model is not None:
                done.model.engine.close()
            serving = self.stage.model
            detail = f"superseded by a later reload; {serving.label} serves"
            log.info("model %s loaded but no longer wanted", done.config.model.dir)
            outcome = SwapOutcome(done.generation, False, serving.label, detail, done.seconds)
            self._reporter.swapped(outcome, None)
        else:
            self._outcome(done, done.generation)

    def _outcome(self, done: Loaded, generation: int, repeat: bool = False) -> None:
        if repeat:  # the answer for a second reload of the same model: already counted
            serving, ok = self.stage.model, done.model is not None
            detail = serving.golden if ok else str(done.error)
            outcome = SwapOutcome(generation, ok, serving.label, detail, done.seconds)
            self._reporter.swapped(outcome, serving.engine.info if ok else None)
        elif done.model is not None:
            self._switch(done.model, generation, done.seconds)
        else:
            assert done.error is not None
            self._failed(done.error, generation, done.seconds)

    def _switch(self, model: ServingModel, generation: int, seconds: float) -> None:
        old = self.stage
        model = replace(model, thresholds=self._thresholds(model, self.config))
        self.stage = self._stage(model)
        new_batchers: list[Batcher[SlotRef]] = [
            Batcher(plan.frames_per_call, self.config.batching.max_wait_ms)
            for plan in self.stage.plans
        ]
        moved = 0
        for batcher in self.batchers:
            for arrived, ref in batcher.hand_over():
                new_batchers[self.stage.group_of(ref)].add(ref, now=arrived)
                moved += 1
        self.batchers = new_batchers
        old_info = old.model.engine.info
        old.model.engine.close()
        version = _runtime_version(model.engine.info.backend)
        self._metrics.engine_unloaded(old_info, _runtime_version(old_info.backend))
        self._metrics.engine_loaded(model.engine.info, version)
        self._metrics.model_swapped(True)
        log.info(
            "model swapped: %s → %s after %.1f s (%d pending frames moved to it); %s",
            old.model.label,
            model.label,
            seconds,
            moved,
            model.golden,
        )
        self._log_plans()
        outcome = SwapOutcome(generation, True, model.label, model.golden, seconds)
        self._reporter.swapped(outcome, model.engine.info)
        if old.shadow is not None:  # compared with the old live model: a new run
            self._metrics.shadow_running(old.model.label, old.shadow.model.label, False)
            old.shadow.close()
            self.start_shadow(self.config)

    def _failed(self, error: SwapError, generation: int, seconds: float) -> None:
        serving = self.stage.model
        self._metrics.model_swapped(False, error.reason)
        log.error("model swap failed, %s keeps serving: %s", serving.label, error)
        outcome = SwapOutcome(generation, False, serving.label, str(error), seconds)
        self._reporter.swapped(outcome, None)
        self.stage.thresholds = self._thresholds(serving, self.config)

    # -- shadow runs -------------------------------------------------------------------

    def start_shadow(self, config: DaemonConfig) -> None:
        """Stop the shadow run in progress; start `config`'s, if any (loaded in a thread)."""
        stage = self.stage
        if stage.shadow is not None:
            self._metrics.shadow_running(stage.model.label, stage.shadow.model.label, False)
            stage.shadow.close()
            log.info("shadow run of %s ended", stage.shadow.model.label)
            stage.shadow = stage.sampler = None
        if config.shadow.model_dir is None:
            self._shadow_wanted = None
            return
        self._shadow_wanted = config
        if not self._shadow_loader.busy:
            self._shadow_loader.start(config, self._generation)

    def _open_shadow(self, config: DaemonConfig) -> ServingModel:
        assert config.shadow.model_dir is not None
        # At the candidate's own card thresholds: those it would be deployed with.
        model = replace(config.model, dir=Path(config.shadow.model_dir), thresholds=())
        shadow = replace(config, model=model)
        classes = tuple(self.stage.model.card.classes)
        return open_model(shadow, classes=classes, golden=False)

    def _shadow_ready(self, done: Loaded) -> None:
        wanted = self._shadow_wanted
        if wanted is None or wanted.shadow != done.config.shadow:
            if done.model is not None:
                done.model.engine.close()
            if wanted is not None:
                self._shadow_loader.start(wanted, self._generation)
            return
        if done.model is None:
            assert done.error is not None
            log.error("shadow run not started: %s", done.error)
            return
        settings = wanted.shadow
        stage = self.stage
        store = ShadowStore(shadow_directory(settings.dir))
        run_id = store.begin(
            wanted.line.name, stage.model.label, done.model.label, settings.share,
            tuple(stage.model.card.classes),
        )  # fmt: skip
        stage.shadow = ShadowRunner(
            done.model,
            store,
            self._metrics,
            run_id=run_id,
            queue_size=settings.queue,
            max_saved=settings.max_saved,
            overlap=wanted.batching.tile_overlap,
        )
        stage.sampler = ShadowSampler(settings.share)
        self._metrics.shadow_running(stage.model.label, done.model.label, True)
        log.info(
            "shadow run %d: %s on %.0f%% of frames beside %s, comparisons in %s",
            run_id,
            done.model.label,
            100 * settings.share,
            stage.model.label,
            store.directory,
        )

    def close(self) -> None:
        self._loader.close()
        self._shadow_loader.close()
        if self.stage.shadow is not None:
            self.stage.shadow.close()
        self.stage.model.engine.close()


def _same_target(a: DaemonConfig, b: DaemonConfig) -> bool:
    return (a.model.dir, a.engine) == (b.model.dir, b.engine)


def shadow_directory(directory: str | None, environ: Mapping[str, str] | None = None) -> Path:
    """``shadow.dir``, else $STATE_DIRECTORY/shadow (systemd), else ./defectd-state/shadow."""
    if directory is not None:
        return Path(directory)
    env = os.environ if environ is None else environ
    state = env.get("STATE_DIRECTORY", "").split(":")[0]
    return (Path(state) if state else Path("defectd-state")).resolve() / "shadow"
