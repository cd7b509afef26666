"""Write synthetic frames to disk in the Severstal layout: train_images/ and train.csv."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2

from defectd.engines.errors import InvalidInput, InvalidSetting
from defectd.engines.files import atomic_write
from defectd.engines.labels import LabelTable, write_labels
from defectd.engines.rle import encode
from defectd.engines.synth.line import SynthConfig, SyntheticLine
from defectd.engines.synth.stats import NUM_CLASSES


@dataclass(frozen=True)
class DatasetSummary:
    """What `write_dataset` wrote."""

    path: Path
    frames: int
    defect_free: int
    class_frames: tuple[int, ...]  # frames containing class 1..4
    rows: int  # rows in train.csv, one per (image, class) present

    @property
    def defect_free_share(self) -> float:
        """Share of frames without any label."""
        return self.defect_free / self.frames if self.frames else 0.0

    def describe(self) -> str:
        """One paragraph for people."""
        per_class = ", ".join(f"class {c + 1}: {n}" for c, n in enumerate(self.class_frames))
        return (
            f"Wrote {self.frames} frames to {self.path} (train_images/ and train.csv, "
            f"{self.rows} label rows): {self.defect_free} defect-free "
            f"({100 * self.defect_free_share:.1f}%); frames per class: {per_class}."
        )


def _prepare(out: Path, overwrite: bool) -> Path:
    """Create out/train_images, refusing to mix with an earlier dataset unless told to."""
    images = out / "train_images"
    if out.exists() and not out.is_dir():
        raise InvalidInput(f"{out} is a file: give a directory for the dataset")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise InvalidInput(
                f"{out} is not empty: use an empty directory or --force (overwrite=True) "
                "to replace its train.csv and train_images/*.jpg"
            )
        # Stale images would read as defect-free frames (no rows), so they must go.
        (out / "train.csv").unlink(missing_ok=True)
        if images.is_dir():
            for old in images.glob("*.jpg"):
                old.unlink()
    images.mkdir(parents=True, exist_ok=True)
    return images


def write_dataset(
    out: Path,
    count: int,
    seed: int,
    config: SynthConfig = SynthConfig(),  # noqa: B008  (frozen, so sharing is safe)
    jpeg_quality: int = 95,
    progress: Callable[[int], None] | None = None,
    overwrite: bool = False,
) -> DatasetSummary:
    """Write frames 0..count-1 of `seed` as grey JPEGs plus a Kaggle-layout train.csv.

    train.csv has the competition's newer layout `ImageId,ClassId,EncodedPixels`: one row per
    (image, class) present, sorted by ImageId then ClassId; defect-free images have no rows.
    `progress(n)` is called with the number of frames written so far.
    """
    if count < 1:
        raise InvalidSetting(f"count must be at least 1, got {count}")
    if not 1 <= jpeg_quality <= 100:
        raise InvalidSetting(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
    out = Path(out)
    images = _prepare(out, overwrite)
    line = SyntheticLine(seed, config)
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
    labels = LabelTable(num_classes=NUM_CLASSES)
    class_frames = [0] * NUM_CLASSES
    defect_free = 0
    for done, frame in enumerate(line.frames(count), start=1):
        ok, encoded = cv2.imencode(".jpg", frame.image, params)
        if not ok:
            raise OSError(f"OpenCV could not encode {frame.image_id} as JPEG")
        (images / frame.image_id).write_bytes(encoded.tobytes())
        classes = frame.classes
        defect_free += not classes
        for c in classes:
            class_frames[c - 1] += 1
            labels.set(frame.image_id, c, encode(frame.masks[c - 1]))
        if progress is not None:
            progress(done)
    # Write then rename: a crash never leaves a half-written train.csv behind.
    rows = atomic_write(out / "train.csv", lambda path: write_labels(path, labels, layout="new"))
    return DatasetSummary(out, count, defect_free, tuple(class_frames), rows)
