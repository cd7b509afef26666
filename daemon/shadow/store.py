"""Where a shadow run's comparisons go: ``shadow.db`` (SQLite) and ``pictures/`` in
``shadow.dir``.

One row per run (the daemon start or reload that began comparing a live and a shadow model)
and one per compared frame and class. A disagreement (`ClassAgreement.disagrees`) also gets
a picture, up to ``shadow.max_saved`` per run: the frame around where the two models differ,
the live model's mask outlined above, the shadow's below. `defectd shadow report` reads it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from defectd.daemon.shadow.compare import ClassAgreement
from defectd.engines.postprocess import FrameDefects

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY,
    started_ns INTEGER NOT NULL,
    line TEXT NOT NULL,
    live_model TEXT NOT NULL,
    shadow_model TEXT NOT NULL,
    share REAL NOT NULL,
    classes TEXT NOT NULL  -- the class names, comma-separated, class 1 first
);
CREATE TABLE IF NOT EXISTS comparisons (
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    camera TEXT NOT NULL,
    seq INTEGER NOT NULL,
    capture_ns INTEGER NOT NULL,
    class_id INTEGER NOT NULL,
    live_px INTEGER NOT NULL,
    shadow_px INTEGER NOT NULL,
    both_px INTEGER NOT NULL,
    live_found INTEGER NOT NULL,
    shadow_found INTEGER NOT NULL,
    picture TEXT  -- relative to the store's directory; NULL: agreed, or max_saved reached
);
CREATE INDEX IF NOT EXISTS comparisons_run ON comparisons(run_id, class_id);
"""
LIVE_COLOUR = (80, 200, 60)  # BGR: green
SHADOW_COLOUR = (220, 60, 220)  # magenta
PICTURE_MARGIN = 24
PICTURE_MAX_WIDTH = 640


@dataclass(frozen=True)
class Run:
    run_id: int
    started_ns: int
    line: str
    live_model: str
    shadow_model: str
    share: float
    classes: tuple[str, ...]


@dataclass(frozen=True)
class Stored:
    """One stored comparison row."""

    run_id: int
    camera: str
    seq: int
    capture_ns: int
    row: ClassAgreement
    picture: str | None


class ShadowStore:
    """Writes (and reads back) a shadow directory; one writer thread at a time."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "pictures").mkdir(exist_ok=True)
        self._db = sqlite3.connect(self.directory / "shadow.db", check_same_thread=False)
        self._db.executescript(SCHEMA)
        self._saved = 0

    @classmethod
    def open_existing(cls, directory: Path | str) -> ShadowStore:
        """A store to read; ValueError naming the fix when `directory` holds none."""
        path = Path(directory) / "shadow.db"
        if not path.exists():
            raise ValueError(
                f"{directory}: no shadow.db here; it is shadow.dir of a daemon that ran with "
                "shadow.model_dir set"
            )
        return cls(directory)

    def begin(
        self, line: str, live: str, shadow: str, share: float, classes: tuple[str, ...]
    ) -> int:
        """Start a run; its id."""
        cursor = self._db.execute(
            "INSERT INTO runs (started_ns, line, live_model, shadow_model, share, classes) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (time.time_ns(), line, live, shadow, share, ",".join(classes)),
        )
        self._db.commit()
        self._saved = 0
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def add(
        self,
        run_id: int,
        camera: str,
        seq: int,
        capture_ns: int,
        rows: tuple[ClassAgreement, ...],
        picture: str | None,
    ) -> None:
        """One frame's comparison; `picture` goes with its disagreeing classes."""
        self._db.executemany(
            "INSERT INTO comparisons VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    run_id,
                    camera,
                    seq,
                    capture_ns,
                    row.class_id,
                    row.live_px,
                    row.shadow_px,
                    row.both_px,
                    int(row.live_found),
                    int(row.shadow_found),
                    picture if row.disagrees else None,
                )
                for row in rows
            ],
        )
        self._db.commit()

    def save_picture(
        self,
        run_id: int,
        max_saved: int,
        camera: str,
        seq: int,
        frame: npt.NDArray[np.uint8],
        live: FrameDefects,
        shadow: FrameDefects,
        classes: tuple[int, ...],
    ) -> str | None:
        """The picture of a disagreement on `classes`, its path relative to the store; None
        once this run saved `max_saved`."""
        if self._saved >= max_saved:
            return None
        self._saved += 1
        name = f"pictures/run{run_id}-{camera}-{seq}.png"  # camera ids hold no "/"
        cv2.imwrite(str(self.directory / name), disagreement_picture(frame, live, shadow, classes))
        return name

    def runs(self) -> list[Run]:
        rows = self._db.execute(
            "SELECT run_id, started_ns, line, live_model, shadow_model, share, classes "
            "FROM runs ORDER BY run_id"
        ).fetchall()
        return [Run(r[0], r[1], r[2], r[3], r[4], r[5], tuple(r[6].split(","))) for r in rows]

    def comparisons(self, run_id: int | None = None) -> Iterator[Stored]:
        """Stored rows (of one run, or all), in the order written."""
        query = "SELECT * FROM comparisons"
        args: tuple[int, ...] = ()
        if run_id is not None:
            query, args = query + " WHERE run_id = ?", (run_id,)
        for r in self._db.execute(query + " ORDER BY rowid", args):
            row = ClassAgreement(r[4], r[5], r[6], r[7], bool(r[8]), bool(r[9]))
            yield Stored(r[0], r[1], r[2], r[3], row, r[10])

    def close(self) -> None:
        self._db.close()


def disagreement_picture(
    frame: npt.NDArray[np.uint8],
    live: FrameDefects,
    shadow: FrameDefects,
    classes: tuple[int, ...],
) -> npt.NDArray[np.uint8]:
    """The frame around where `classes` differ: the live mask outlined above (green), the
    shadow's below (magenta), cut to the differing pixels plus a margin."""
    height, width = frame.shape
    union = np.zeros((height, width), np.uint8)
    for class_id in classes:
        for defects in (live, shadow):
            plane = defects.mask(class_id)
            if plane is not None:
                union |= plane
    ys, xs = np.nonzero(union)
    if ys.size:
        y0, y1 = max(0, ys.min() - PICTURE_MARGIN), min(height, ys.max() + 1 + PICTURE_MARGIN)
        x0, x1 = max(0, xs.min() - PICTURE_MARGIN), min(width, xs.max() + 1 + PICTURE_MARGIN)
    else:
        y0, y1, x0, x1 = 0, height, 0, width
    panels = []
    for defects, colour, title in ((live, LIVE_COLOUR, "live"), (shadow, SHADOW_COLOUR, "shadow")):
        panel = cv2.cvtColor(frame[y0:y1, x0:x1], cv2.COLOR_GRAY2BGR)
        for class_id in classes:
            plane = defects.mask(class_id)
            if plane is None:
                continue
            contours, _ = cv2.findContours(
                np.ascontiguousarray(plane[y0:y1, x0:x1]),
                cv2.RETR_EXTERNAL,
                cv2.CHAIN_APPROX_SIMPLE,
            )
            cv2.drawContours(panel, contours, -1, colour, 1)
        scale = min(1.0, PICTURE_MAX_WIDTH / panel.shape[1])
        if scale < 1.0:
            panel = cv2.resize(panel, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        label = f"{title}: class {', '.join(map(str, classes))}"
        band = np.full((18, panel.shape[1], 3), 32, np.uint8)
        cv2.putText(band, label, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
        panels.append(np.vstack([band, panel]))
    return np.vstack(panels)
