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
import numpy.typing as npt
import zmq

from defectd.daemon.accounting import FrameEvent
from defectd.daemon.config import DaemonConfig
from defectd.daemon.events import DefectEvent, FrameSummary, defect_events, frame_summary
from defectd.daemon.geometry import StripGeometry
from defectd.daemon.slots import SlotPool, SlotState
from defectd.daemon.stages.common import (
    ControlInbox,
    Reporter,
    StageSpec,
    bind_ipc,
    serve,
    start_stage,
)
from defectd.daemon.stages.inference import Inferred
from defectd.daemon.stages.receiver import FrameNote
from defectd.engines.model_card import read_card
from defectd.engines.postprocess import FrameDefects, postprocess

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
class Crop:
    """The pixels around one region, for the defect store's picture of it."""

    class_id: int
    bbox: tuple[int, int, int, int]  # the region's, in frame pixels
    origin: tuple[int, int]  # x, y of the crop's top-left corner in the frame
    pixels: npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Published:
    """A frame's events for the publisher: defects first, then the summary (publish_ns 0:
    the publisher stamps it when it sends)."""

    defects: tuple[DefectEvent, ...]
    summary: FrameSummary
    received: float  # monotonic receive time, for the receive → publish latency
    crops: tuple[Crop, ...] = ()  # with store.crops: the largest regions' pixels


CROPS_PER_CLASS = 8  # regions per class and frame whose pixels go to the store
CROP_MAX_PX = 512  # a crop's longest side; larger boxes are cut around their centre


def cut_crops(
    frame: npt.NDArray[np.uint8], events: tuple[DefectEvent, ...], margin: int
) -> tuple[Crop, ...]:
    """Copies of the frame around each event's largest regions (`margin` px around the box,
    clipped to the frame, at most `CROP_MAX_PX` a side)."""
    height, width = frame.shape
    crops = []
    for event in events:
        for region in event.regions[:CROPS_PER_CLASS]:
            x, y, w, h = region.bbox
            x0, y0 = max(0, x - margin), max(0, y - margin)
            x1, y1 = min(width, x + w + margin), min(height, y + h + margin)
            if x1 - x0 > CROP_MAX_PX:
                x0 = max(0, min(width - CROP_MAX_PX, x + w // 2 - CROP_MAX_PX // 2))
                x1 = x0 + CROP_MAX_PX
            if y1 - y0 > CROP_MAX_PX:
                y0 = max(0, min(height - CROP_MAX_PX, y + h // 2 - CROP_MAX_PX // 2))
                y1 = y0 + CROP_MAX_PX
            pixels = np.array(frame[y0:y1, x0:x1])  # a copy: the slot is released next
            crops.append(Crop(event.class_id, region.bbox, (x0, y0), pixels))
    return tuple(crops)


class Worker:
    """Turns one `Inferred` message into a `Published`, or None when its frame was reclaimed.

    The thresholds and the model's name come with each message from the inference process:
    a threshold reload or a model swap there applies from the next frame, and a frame is
    always post-processed with the thresholds of the model that inferred it."""

    def __init__(
        self,
        pool: SlotPool,
        classes: tuple[str, ...],
        *,
        line: str,
        include_rle: bool,
        max_regions: int,
        geometry: Mapping[str, StripGeometry] | None = None,
        crop_margin: int | None = None,
    ) -> None:
        self._pool = pool
        self._crop_margin = crop_margin  # None: no crops (the store keeps none)
        self._classes = classes
        self._line = line
        self._include_rle = include_rle
        self._max_regions = max_regions
        self._geometry = dict(geometry or {})  # camera id → where its frame lies on the strip

    @classmethod
    def of(cls, pool: SlotPool, config: DaemonConfig, classes: tuple[str, ...]) -> Worker:
        """A worker for `config` (at start, and again on each reload)."""
        return cls(
            pool,
            classes,
            line=config.line.name,
            include_rle=config.postprocess.include_rle,
            max_regions=config.postprocess.max_regions,
            geometry={
                camera.id: geometry
                for camera in config.cameras
                if (geometry := StripGeometry.of(camera)) is not None
            },
            crop_margin=(
                config.store.crop_margin_px if config.store.enabled and config.store.crops else None
            ),
        )

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
            defects = postprocess(probs, item.presence, item.thresholds, item.peak)
        else:
            defects = FrameDefects({}, (), item.presence, (height, width))
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
            model=item.model,
            max_regions=self._max_regions,
            geometry=self._geometry.get(ref.meta.camera),
        )
        crops: tuple[Crop, ...] = ()
        if events and item.held and self._crop_margin is not None:
            crops = cut_crops(self._pool.frame(ref.slot), tuple(events), self._crop_margin)
        if item.held and not self._pool.release(ref):
            return None  # reclaimed meanwhile: the events are not ours to send
        summary = frame_summary(
            info,
            defects,
            self._classes,
            line=self._line,
            receive_ns=note.receive_ns,
            publish_ns=0,
            batch_size=item.batch_size,
            model=item.model,
        )
        return Published(tuple(events), summary, ref.meta.received, crops)

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
    classes = tuple(read_card(config.model.dir).classes)  # a swap keeps them (plan_reload)
    worker = Worker.of(pool, config, classes)
    control = ControlInbox(context, spec)
    inbox = context.socket(zmq.PULL)
    inbox.setsockopt(zmq.LINGER, 0)
    bind_ipc(inbox, spec.paths.worker(spec.index))
    outbox = context.socket(zmq.PUSH)
    outbox.setsockopt(zmq.SNDHWM, 100_000)
    outbox.setsockopt(zmq.LINGER, 2000)
    outbox.connect(spec.paths.publisher)

    def drain(wait_ms: int) -> int:
        nonlocal worker
        update = control.poll()
        if update is not None:
            worker = Worker.of(pool, update.config, classes)
            reporter.applied(update.generation)
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
        control.close()
        outbox.close()
        pool.close()
        context.term()
