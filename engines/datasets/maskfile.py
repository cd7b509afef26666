"""Mask image files: read one, and turn it into class planes as its kind says.

A mask is one 8-bit grey channel (a 3-channel file whose channels are equal counts as grey).
A label map's pixel value names the class (0 background); a binary mask marks its one class
with values above 127, so soft, anti-aliased edges threshold cleanly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from defectd.engines.datasets.spec import BINARY_THRESHOLD, ClassSpec

MAX_VALUES_NAMED = 6


def read_mask(path: Path) -> tuple[npt.NDArray[np.uint8] | None, str | None]:
    """(the H×W mask, None), or (None, what is wrong with the file)."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        return None, "cannot be read as an image"
    if raw.dtype != np.uint8:
        return None, f"mask is {raw.dtype} ({raw.itemsize * 8}-bit); masks are 8-bit grey"
    if raw.ndim == 3:
        colour = raw[..., :3]
        if not bool((colour == colour[..., :1]).all()):
            return None, (
                "mask is in colour (its channels differ); a mask is one grey channel whose "
                "value is the class"
            )
        raw = colour[..., 0]
    return np.ascontiguousarray(raw, dtype=np.uint8), None


def value_counts(mask: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """Pixels per value 0..255."""
    return np.bincount(mask.ravel(), minlength=256).astype(np.int64)


def label_map_planes(
    mask: npt.NDArray[np.uint8], classes: Sequence[ClassSpec]
) -> tuple[npt.NDArray[np.uint8], str | None]:
    """(C×H×W planes of a label map, None) or (planes, the values that are no class)."""
    counts = value_counts(mask)
    allowed = {0, *(c.value for c in classes)}
    bad = [int(v) for v in np.flatnonzero(counts) if int(v) not in allowed]
    planes = np.zeros((len(classes), *mask.shape), dtype=np.uint8)
    for index, spec in enumerate(classes):
        planes[index] = mask == spec.value
    if not bad:
        return planes, None
    named = ", ".join(f"{v} ({counts[v]} px)" for v in bad[:MAX_VALUES_NAMED])
    more = f" and {len(bad) - MAX_VALUES_NAMED} more" if len(bad) > MAX_VALUES_NAMED else ""
    known = ", ".join(f"{c.value} {c.name}" for c in classes) or "none"
    return planes, f"values {named}{more} are not classes (classes: {known}; 0 is background)"


def binary_planes(
    mask: npt.NDArray[np.uint8], num_classes: int, class_id: int | None
) -> tuple[npt.NDArray[np.uint8], str | None]:
    """(planes with `class_id`'s plane set where mask > 127, None) or (planes, a problem).

    With `class_id` None (a defect-free image) every plane stays empty.
    """
    planes = np.zeros((num_classes, *mask.shape), dtype=np.uint8)
    top = int(mask.max()) if mask.size else 0
    if 0 < top <= BINARY_THRESHOLD:
        return planes, (
            f"mask values are 0..{top}, but a binary mask marks its class with values above "
            f"{BINARY_THRESHOLD} (is it a label map? set mask_kind: label_map in dataset.yaml)"
        )
    if class_id is not None:
        planes[class_id - 1] = mask > BINARY_THRESHOLD
    return planes, None


def mask_values(paths: Sequence[Path]) -> set[int]:
    """Every pixel value found in the readable masks among `paths` (unreadable ones skipped:
    `check` reports them)."""
    seen = np.zeros(256, dtype=bool)
    for path in paths:
        mask, _ = read_mask(path)
        if mask is not None:
            seen |= value_counts(mask) > 0
    return {int(v) for v in np.flatnonzero(seen)}
