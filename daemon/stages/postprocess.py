"""Post-processing stage: engine results → defect events and frame summaries.

Each worker binds its own ipc socket; the inference process sends every camera's frames to
one worker, so per-camera order holds end to end. Clean frames arrive with their scores
only and become a summary at once; frames with candidate classes arrive with those classes'
probability planes and go through `engines.postprocess.postprocess`, the implementation
training tunes with, under the effective thresholds (model card + ``model.thresholds``). The
worker releases the frame's slot, then hands the built events to the publisher: a worker
never waits for ZeroMQ sends to subscribers.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import zmq

from defectd.daemon.accounting import FrameEvent
from defectd.daemon.config import effective_thresholds
from defectd.daemon.events import DefectEvent, FrameSummary, defect_events, frame_summary
from defectd.daemon.geometry import StripGeometry
from defectd.daemon.slots import SlotPool, SlotState
from defectd.daemon.stages.common import Reporter, StageSpec, bind_ipc, serve, start_stage
from defectd.daemon.stages.inference import Inferred
from defectd.daemon.stages.receiver import FrameNote
from defectd.engines.model_card import read_card
from defectd.engines.postprocess import FrameDefects, PostprocessConfig, postprocess

log = logging.getLogger(__name__)

POLL_MS = 100
_DRAIN = 64


@dataclass(frozen=True)
class FrameInfo:
    """A frame's identity and header extras, in the shape `daemon.events` builders take."""

    camera_id: str
    seq: int
    capture_ns: int
    coil_id: str | None
    position_m: float | None


@dataclass(frozen=True)
class Published:
    """A frame's events for the publisher: defects first, then the summary (publish_ns 0:
    the publisher stamps it when it sends)."""

    defects: tuple[DefectEvent, ...]
    summary: FrameSummary
    received: float  # monotonic receive time, for the receive → publish latency


class Worker:
    """Turns one `Inferred` message into a `Published`, or None when its frame was reclaimed."""

    def __init__(
        self,
        pool: SlotPool,
        thresholds: PostprocessConfig,
        classes: tuple[str, ...],
        *,
        line: str,
        model: str,
        include_rle: bool,
        max_regions: int,
        geometry: Mapping[str, StripGeometry] | None = None,
    ) -> None:
        self._pool = pool
        self._thresholds = thresholds
        self._classes = classes
        self._line = line
        self._model = model
        self._include_rle = include_rle
        self._max_regions = max_regions
        self._geometry = dict(geometry or {})  # camera id → where its frame lies on the strip

    def handle(self, parts: list[zmq.Frame]) -> Published | None:
        item: Inferred = pickle.loads(parts[0].buffer)
        ref = item.ref
        # advance: this worker owns the frame from now on (a crash here is counted against it)
        if item.held and not self._pool.advance(ref, SlotState.DONE):
            return None  # reclaimed with a dead inference process: counted as worker_crash
        height, width = item.shape
        if item.candidates:
            probs = np.zeros((len(item.presence), height, width), np.dtype(item.dtype))
            for index, part in zip(item.candidates, parts[1:], strict=True):
                probs[index] = np.frombuffer(part.buffer, probs.dtype).reshape(height, width)
            defects = postprocess(probs, item.presence, self._thresholds, item.peak)
        else:
            defects = FrameDefects({}, (), item.presence, (height, width))
        if item.held and not self._pool.release(ref):
            return None
        note = FrameNote.decode(item.note)
        info = FrameInfo(
            ref.meta.camera, ref.meta.seq, note.capture_ns, note.coil_id, note.position_m
        )
        events = defect_events(
            info,
            defects,
            self._classes,
            self._include_rle,
            line=self._line,
            model=self._model,
            max_regions=self._max_regions,
            geometry=self._geometry.get(ref.meta.camera),
        )
        summary = frame_summary(
            info,
            defects,
            self._classes,
            line=self._line,
            receive_ns=note.receive_ns,
            publish_ns=0,
            batch_size=item.batch_size,
        )
        return Published(tuple(events), summary, ref.meta.received)

    def give_up(self, parts: list[zmq.Frame]) -> FrameEvent | None:
        """Release the frame of a message `handle` failed on; its drop event, if it was ours."""
        item: Inferred = pickle.loads(parts[0].buffer)
        meta = item.ref.meta
        if item.held and not self._pool.release(item.ref):
            return None
        return FrameEvent("dropped", meta.camera, meta.seq, time.monotonic(), "engine_error")


def run_postprocess(spec: StageSpec) -> None:
    """Entry point of a post-processing worker: handle frames until SIGTERM, then those
    already queued."""
    stop = start_stage(spec)
    config = spec.config
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    reporter = Reporter(context, spec)
    pool = SlotPool.attach(spec.pool)
    card = read_card(config.model.dir)
    thresholds = effective_thresholds(card, config.model.thresholds, config.source)
    worker = Worker(
        pool,
        thresholds,
        tuple(card.classes),
        line=config.line.name,
        model=f"{card.name} {card.version}",
        include_rle=config.postprocess.include_rle,
        max_regions=config.postprocess.max_regions,
        geometry={
            camera.id: geometry
            for camera in config.cameras
            if (geometry := StripGeometry.of(camera)) is not None
        },
    )
    inbox = context.socket(zmq.PULL)
    inbox.setsockopt(zmq.LINGER, 0)
    bind_ipc(inbox, spec.paths.worker(spec.index))
    outbox = context.socket(zmq.PUSH)
    outbox.setsockopt(zmq.SNDHWM, 100_000)
    outbox.setsockopt(zmq.LINGER, 2000)
    outbox.connect(spec.paths.publisher)

    def drain(wait_ms: int) -> int:
        if not inbox.poll(wait_ms):
            return 0
        for count in range(_DRAIN):
            try:
                parts = inbox.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return count
            try:
                published = worker.handle(parts)
            except Exception:
                log.exception("post-processing failed on a frame; dropping it")
                failed = worker.give_up(parts)
                if failed is not None:
                    reporter.frame(failed)
                continue
            if published is not None:
                outbox.send_pyobj(published)
        return _DRAIN

    try:
        serve(stop, reporter, drain, POLL_MS)
    finally:
        reporter.flush(final=True)
        reporter.close()
        inbox.close(linger=0)
        outbox.close()
        pool.close()
        context.term()
