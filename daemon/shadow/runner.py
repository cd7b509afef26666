"""The shadow thread of the inference process: a candidate model on a share of live frames.

`ShadowSampler` picks the share (``shadow.share``) evenly: with 0.1, every tenth frame. The
inference loop hands each picked frame to `ShadowRunner.offer` with a copy of its pixels and
of the live model's probabilities, right after the live batch; the thread runs the shadow
engine on it (tiled like the live path), post-processes both models' probabilities at each
model's own thresholds, compares them (`compare_frame`), stores the comparison and a picture
of each disagreement (`ShadowStore`) and counts them (``defectd_shadow_*``).

The live path never waits for the shadow: the queue holds ``shadow.queue`` frames and a
frame offered to a full queue is skipped and counted (``defectd_shadow_skipped_total``). The
shadow's defects go nowhere else: no event is published for them.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from defectd.daemon.metrics import Metrics
from defectd.daemon.shadow.compare import compare_frame
from defectd.daemon.shadow.store import ShadowStore
from defectd.daemon.stages.model_swap import ServingModel
from defectd.engines.postprocess import PostprocessConfig, postprocess
from defectd.engines.tiled_engine import TiledFrames, plan_frames

log = logging.getLogger(__name__)


class ShadowSampler:
    """Takes `share` of the frames it is shown, spread evenly (a credit that fills by `share`
    per frame and is spent by 1 per frame taken)."""

    def __init__(self, share: float) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share}")
        self._share = share
        self._credit = 0.0

    def take(self) -> bool:
        self._credit += self._share
        if self._credit >= 1.0 - 1e-9:
            self._credit -= 1.0
            return True
        return False


@dataclass(frozen=True)
class ShadowFrame:
    """One live frame for the shadow, with what the live model made of it."""

    camera: str
    seq: int
    capture_ns: int
    pixels: npt.NDArray[np.uint8]  # H×W, a copy
    probs: npt.NDArray[np.floating]  # C×H×W live probabilities, a copy
    presence: tuple[float, ...]
    peak: tuple[float, ...]
    thresholds: PostprocessConfig  # the live model's, when it inferred the frame


class ShadowRunner:
    """Runs `model` on the frames offered, in a thread, until `close`."""

    def __init__(
        self,
        model: ServingModel,
        store: ShadowStore,
        metrics: Metrics,
        *,
        run_id: int,
        queue_size: int,
        max_saved: int,
        overlap: int = 0,
    ) -> None:
        self.model = model
        self._store = store
        self._metrics = metrics
        self._run_id = run_id
        self._max_saved = max_saved
        self._overlap = overlap
        self._fill = round(float(model.card.normalisation.get("mean", 0.0)) * 255.0)
        self._tilers: dict[tuple[int, int], TiledFrames] = {}
        self._queue: queue.Queue[ShadowFrame | None] = queue.Queue(maxsize=queue_size)
        self._classes = tuple(model.card.classes)
        self.compared = 0
        self._thread = threading.Thread(target=self._work, name="defectd-shadow", daemon=True)
        self._thread.start()

    def offer(self, frame: ShadowFrame) -> bool:
        """Queue `frame` for the shadow; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(frame)
        except queue.Full:
            self._metrics.shadow_skipped.inc()
            return False
        return True

    def close(self) -> None:
        """Finish the frames queued, then stop the thread and close the shadow engine."""
        self._queue.put(None)
        self._thread.join()
        self.model.engine.close()

    def _work(self) -> None:
        while (frame := self._queue.get()) is not None:
            try:
                self._compare(frame)
            except Exception:  # the shadow must never take the live path down
                log.exception("shadow comparison of %s seq %d failed", frame.camera, frame.seq)

    def _tiler(self, shape: tuple[int, int]) -> TiledFrames:
        if shape not in self._tilers:
            engine = self.model.engine
            plan = plan_frames(shape, engine.input.shape, engine.info.max_batch, self._overlap)
            self._tilers[shape] = TiledFrames(engine, plan, self._fill)
        return self._tilers[shape]

    def _compare(self, frame: ShadowFrame) -> None:
        shape = (int(frame.pixels.shape[0]), int(frame.pixels.shape[1]))
        output = self._tiler(shape).infer(frame.pixels[np.newaxis])
        live = postprocess(frame.probs, frame.presence, frame.thresholds, frame.peak)
        shadow = postprocess(
            np.asarray(output.probs[0]),
            tuple(np.asarray(output.presence[0], np.float64).tolist()),
            self.model.thresholds,
            tuple(np.asarray(output.peak[0], np.float64).tolist()),
        )
        rows = compare_frame(live, shadow)
        differing = tuple(row.class_id for row in rows if row.disagrees)
        picture = None
        if differing:
            picture = self._store.save_picture(
                self._run_id,
                self._max_saved,
                frame.camera,
                frame.seq,
                frame.pixels,
                live,
                shadow,
                differing,
            )
        self._store.add(self._run_id, frame.camera, frame.seq, frame.capture_ns, rows, picture)
        self._metrics.shadow_compared(rows, self._classes)
        self.compared += 1
