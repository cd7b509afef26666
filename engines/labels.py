"""Severstal label tables: the competition's CSV files, both layouts, read and written.

Two layouts exist in the wild:

- new (Kaggle's train.csv after the 2019 update): ``ImageId,ClassId,EncodedPixels``, one row
  per (image, class); Kaggle lists only non-empty masks, but empty rows are accepted and mean
  "this image is known and clean for that class";
- old (the original release and the submission format): ``ImageId_ClassId,EncodedPixels``, one
  row per image and class, e.g. ``0002cc93b.jpg_1``, empty when the class is absent.

Every row is checked on reading; all problems are reported together with their line numbers.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from defectd.engines.errors import UserError
from defectd.engines.rle import SEVERSTAL_SHAPE, RLEError, decode_runs

Layout = Literal["new", "old"]
NEW_HEADER = ("ImageId", "ClassId", "EncodedPixels")
OLD_HEADER = ("ImageId_ClassId", "EncodedPixels")
MAX_REPORTED = 20


class LabelError(UserError, ValueError):
    """A label file with bad rows; `problems` holds one ``file:line: problem`` string each."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        shown = problems[:MAX_REPORTED]
        more = len(problems) - len(shown)
        text = "\n  ".join(shown) + (f"\n  ... and {more} more" if more else "")
        super().__init__(f"{path}: {len(problems)} bad row(s):\n  {text}")
        self.path = path
        self.problems = problems


@dataclass
class LabelTable:
    """Per-image, per-class Kaggle RLE strings ("" = empty) with where each came from."""

    num_classes: int = 4
    masks: dict[str, list[str]] = field(default_factory=dict)
    lines: dict[tuple[str, int], int] = field(default_factory=dict)
    source: Path | None = None
    layout: Layout = "new"

    @property
    def image_ids(self) -> list[str]:
        """Every image named by some row, sorted."""
        return sorted(self.masks)

    def rle(self, image_id: str, class_id: int) -> str:
        """The RLE of one (image, class); "" when the image or the class has no mask."""
        row = self.masks.get(image_id)
        return row[class_id - 1] if row is not None else ""

    def classes(self, image_id: str) -> tuple[int, ...]:
        """The 1-based classes with a non-empty mask in `image_id`."""
        row = self.masks.get(image_id, [])
        return tuple(i + 1 for i, rle in enumerate(row) if rle)

    def set(self, image_id: str, class_id: int, rle: str) -> None:
        """Record one (image, class) mask; "" marks the image as known and clean for the class."""
        if not 1 <= class_id <= self.num_classes:
            raise ValueError(f"class {class_id} is not in 1..{self.num_classes}")
        row = self.masks.setdefault(image_id, [""] * self.num_classes)
        row[class_id - 1] = rle


def _detect_layout(header: list[str], path: Path) -> Layout:
    names = [name.strip() for name in header]
    if all(name in names for name in NEW_HEADER):
        return "new"
    if all(name in names for name in OLD_HEADER):
        return "old"
    raise LabelError(
        path,
        [
            f"{path}:1: header {','.join(names)!r} is neither "
            f"{','.join(NEW_HEADER)!r} nor {','.join(OLD_HEADER)!r}"
        ],
    )


def _split_row(row: dict[str, str], layout: Layout) -> tuple[str, str, str]:
    """(image_id, class text, rle) of one CSV row in either layout."""
    rle = (row.get("EncodedPixels") or "").strip()
    if layout == "new":
        return (row.get("ImageId") or "").strip(), (row.get("ClassId") or "").strip(), rle
    key = (row.get("ImageId_ClassId") or "").strip()
    image_id, _, class_text = key.rpartition("_")
    return image_id, class_text, rle


def read_labels(
    path: Path | str,
    num_classes: int = 4,
    shape: tuple[int, int] = SEVERSTAL_SHAPE,
) -> LabelTable:
    """Read a label CSV in either layout, validating every row and every RLE string.

    Raises FileNotFoundError for a missing file and LabelError listing all bad rows
    (bad header, missing image id, class outside 1..num_classes, duplicate rows, bad RLE).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label file {path} does not exist")
    table = LabelTable(num_classes=num_classes, source=path)
    problems: list[str] = []
    size = shape[0] * shape[1]
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        table.layout = _detect_layout(list(reader.fieldnames or []), path)
        for row in reader:
            line = reader.line_num
            image_id, class_text, rle = _split_row(row, table.layout)
            where = f"{path}:{line}"
            if not image_id:
                problems.append(f"{where}: no image id")
                continue
            try:
                class_id = int(class_text)
            except ValueError:
                problems.append(f"{where}: {image_id}: class {class_text!r} is not an integer")
                continue
            if not 1 <= class_id <= num_classes:
                problems.append(f"{where}: {image_id}: class {class_id} is not in 1..{num_classes}")
                continue
            first = table.lines.get((image_id, class_id))
            if first is not None:
                problems.append(
                    f"{where}: {image_id} class {class_id} repeats the row at line {first}"
                )
                continue
            if rle.lower() == "nan":  # pandas writes missing masks as nan
                rle = ""
            try:
                decode_runs(rle, size)
            except RLEError as exc:
                problems.append(f"{where}: {image_id} class {class_id}: {exc}")
                continue
            table.set(image_id, class_id, rle)
            table.lines[(image_id, class_id)] = line
    if problems:
        raise LabelError(path, problems)
    return table


def write_labels(
    path: Path | str,
    table: LabelTable,
    layout: Layout = "new",
    include_empty: bool = False,
    image_ids: Iterable[str] | None = None,
) -> int:
    """Write `table` as CSV and return the number of rows written.

    The new layout writes only non-empty masks unless `include_empty` (Kaggle's train.csv
    style); the old layout always writes every (image, class), as submissions did.
    `image_ids` restricts and orders the images (default: all, sorted).
    """
    path = Path(path)
    ids = sorted(table.masks) if image_ids is None else list(image_ids)
    rows = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(NEW_HEADER if layout == "new" else OLD_HEADER)
        for image_id in ids:
            for class_id in range(1, table.num_classes + 1):
                rle = table.rle(image_id, class_id)
                if layout == "old":
                    writer.writerow([f"{image_id}_{class_id}", rle])
                elif rle or include_empty:
                    writer.writerow([image_id, class_id, rle])
                else:
                    continue
                rows += 1
    return rows
