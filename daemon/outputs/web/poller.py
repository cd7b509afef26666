"""What the line page needs from the defect store, read every few seconds off the request path.

`StorePoller` is a thread that reads the recent coils and finds the crops of the defects in
the live feed (a feed item is one class on one frame; its crop is the stored strip defect's
that starts there, or runs through it, once the defect is final). Pages and the event stream
then render from memory (`StoreView`): a database that is slow or away delays the coil list
and the thumbnails, never the live feed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial

from defectd.daemon.coils.model import StripDefect
from defectd.daemon.outputs.web.live import CoilSummary, LiveState
from defectd.daemon.outputs.web.store_reader import StoreAbsent, StoreReader
from defectd.daemon.store.backend import Store

log = logging.getLogger(__name__)

POLL_S = 2.0
RECENT = 10  # coils read for the line page
COILS_SEARCHED = 3  # coils of the feed whose crops are looked for, newest first
_SPAN_FRAMES = 64  # a defect over more frames than this is found by its first one only


@dataclass(frozen=True)
class StoreView:
    """The store as last read: the recent coils, or why it could not be read."""

    coils: tuple[CoilSummary, ...] = ()
    problem: str | None = None


class StorePoller:
    """Reads the store every `interval_s` in its own thread (module docstring)."""

    def __init__(
        self,
        reader: StoreReader,
        live: LiveState | None,
        line: str | None,
        interval_s: float = POLL_S,
    ) -> None:
        self._reader = reader
        self._live = live
        self._line = line or None
        self._interval_s = interval_s
        self._view = StoreView()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.polls = 0

    def latest(self) -> StoreView:
        return self._view

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="web-store-poller", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def poll_once(self) -> StoreView:
        """Read the recent coils and look for the feed's crops once; the new view."""
        line = self._line or (self._live.snapshot().line if self._live is not None else None)
        try:
            records = self._reader.read(lambda store: store.coils(line=line, limit=RECENT))
        except StoreAbsent as exc:
            self._view = StoreView(self._view.coils, str(exc))
        else:
            self._view = StoreView(tuple(CoilSummary.of(r) for r in records))
            self._find_crops(line)
        self.polls += 1
        return self._view

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # a bug here must not end the thread: the page would freeze
                log.exception("web view: reading the defect store failed")
            self._stop.wait(self._interval_s)

    def _find_crops(self, line: str | None) -> None:
        if self._live is None or self._reader.crops_dir is None:
            return
        wanted: list[str] = []
        for item in self._live.snapshot().feed:
            if item.crop is None and item.coil_id is not None and item.coil_id not in wanted:
                wanted.append(item.coil_id)
        found: dict[str, str] = {}
        for coil_id in wanted[:COILS_SEARCHED]:
            try:
                defects = self._reader.read(partial(_coil_defects, coil_id=coil_id, line=line))
            except StoreAbsent:
                return
            found.update(crops_by_frame(defects))
        if found:
            self._live.set_crops(found)


def crops_by_frame(defects: Iterable[StripDefect]) -> dict[str, str]:
    """``camera/seq/class_id`` → crop path of the largest stored defect that starts on that
    frame (or, on one camera, runs through it)."""
    best: dict[str, tuple[float, str]] = {}
    for defect in defects:
        if defect.crop is None:
            continue
        seqs = [defect.first_seq]
        if defect.first_camera == defect.last_camera:
            last = min(defect.last_seq, defect.first_seq + _SPAN_FRAMES)
            seqs = list(range(defect.first_seq, last + 1))
        for seq in seqs:
            key = f"{defect.first_camera}/{seq}/{defect.class_id}"
            weight = (2.0 if seq == defect.first_seq else 1.0) * (defect.area_mm2 + 1.0)
            if key not in best or weight > best[key][0]:
                best[key] = (weight, defect.crop)
    return {key: crop for key, (_, crop) in best.items()}


def _coil_defects(store: Store, coil_id: str, line: str | None) -> list[StripDefect]:
    return store.defects(coil_id, line=line)
