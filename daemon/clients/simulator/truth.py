"""The simulator's truth: a Kaggle-layout CSV of every frame sent, keyed by image id.

`truth_image_id` (``"<camera_id>-<seq>.jpg"``) names a sent frame: the camera id and seq of a
published defect event name the same image, which is how the demo scores what the daemon
found. `TruthWriter` streams the rows and renames the file into place only when it is
complete.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

from defectd.engines.labels import NEW_HEADER


def truth_image_id(camera_id: str, seq: int) -> str:
    """The ImageId of a sent frame in the truth CSV: ``"<camera_id>-<seq>.jpg"``.

    A defect event's ``camera_id`` and ``seq`` give the same id, so truth and events join
    without any other bookkeeping (camera ids are clean topic segments, so the event carries
    the id unchanged).
    """
    return f"{camera_id}-{seq}.jpg"


def parse_truth_image_id(image_id: str) -> tuple[str, int]:
    """(camera_id, seq) of a `truth_image_id`; ValueError for anything else."""
    stem = image_id.removesuffix(".jpg")
    camera, _, seq = stem.rpartition("-")  # camera ids may hold "-", seq is digits only
    if stem == image_id or not camera or not seq.isdigit():
        raise ValueError(f"{image_id!r} is not a simulator image id like 'cam0-12.jpg'")
    return camera, int(seq)


class TruthWriter:
    """Streams Kaggle-layout truth rows (``ImageId,ClassId,EncodedPixels``, every class of
    every frame, empty RLE for a clean class) to ``PATH.partial``; `close` renames it to PATH,
    so a file at PATH is complete for the frames that were sent."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._partial = self.path.with_name(self.path.name + ".partial")
        self._handle = self._partial.open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._handle, lineterminator="\n")
        self._writer.writerow(NEW_HEADER)
        self.frames = 0

    def write(self, image_id: str, rles: Sequence[str]) -> None:
        """The rows of one frame: `rles` is its Kaggle RLE per class, class 1 first."""
        for class_id, rle in enumerate(rles, start=1):
            self._writer.writerow((image_id, class_id, rle))
        self.frames += 1

    def close(self) -> None:
        """Finish the file: close it and move it to `path` (a second call does nothing)."""
        if not self._handle.closed:
            self._handle.close()
            os.replace(self._partial, self.path)
