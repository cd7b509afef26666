"""Probability maps → defects: the one post-processing implementation.

The daemon runs it on every frame and training's `tune` and `evaluate` run it on validation
frames, so the thresholds that were tuned are exactly what runs on the line. Per class, in
this order:

1. presence gate: the class-presence score must reach ``presence`` (the winning Kaggle
   solutions' classifier gate, here from the model's own presence head);
2. pixel threshold: pixels with probability ≥ ``pixel`` are candidate defect pixels;
3. connected components (8-connected) smaller than ``min_component_area`` are removed;
4. the class is dropped for the frame when fewer than ``min_mask_area`` pixels remain.

A model with exclusive classes (``head="softmax"``, one class per pixel, background the rest)
adds one rule to step 2: a pixel is a candidate of class c only when c is also the argmax over
[background = 1 − Σ probs, probs_1, …, probs_C], so kept classes never overlap. The argmax is
only computed when some class passes its presence gate and peak, so clean frames stay cheap.

Pure numpy + OpenCV: no torch, no GPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from defectd.engines.errors import InvalidSetting
from defectd.engines.rle import encode

FloatArray = npt.NDArray[np.floating[Any]]
UInt8Array = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class ClassThresholds:
    """Post-processing thresholds of one class (probabilities in [0, 1], areas in pixels)."""

    presence: float = 0.5
    pixel: float = 0.5
    min_component_area: int = 0
    min_mask_area: int = 0

    def __post_init__(self) -> None:
        for name in ("presence", "pixel"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InvalidSetting(f"threshold {name} must be in [0, 1], got {value}")
        for name in ("min_component_area", "min_mask_area"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidSetting(f"{name} must be a whole number of pixels ≥ 0, got {value!r}")


HEADS = ("sigmoid", "softmax")


@dataclass(frozen=True)
class PostprocessConfig:
    """Thresholds for every class, class 1 first, and the model head they apply to.

    `head` is the model card's: ``sigmoid`` (independent classes, masks may overlap) or
    ``softmax`` (exclusive classes: each pixel goes to its argmax class or the background).
    It is not part of `to_list`; the card stores it beside the thresholds.
    """

    classes: tuple[ClassThresholds, ...] = field(
        default_factory=lambda: tuple(ClassThresholds() for _ in range(4))
    )
    head: str = "sigmoid"

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise InvalidSetting(f"head must be one of {list(HEADS)}, got {self.head!r}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def exclusive(self) -> bool:
        """True when classes are exclusive per pixel (softmax head)."""
        return self.head == "softmax"

    def to_list(self) -> list[dict[str, Any]]:
        """JSON-ready list, one dict per class with its 1-based ``class_id``."""
        return [{"class_id": i + 1, **asdict(t)} for i, t in enumerate(self.classes)]

    @classmethod
    def from_list(
        cls, entries: Sequence[Mapping[str, Any]], head: str = "sigmoid"
    ) -> PostprocessConfig:
        """Inverse of `to_list`; ValueError naming the class and key on bad entries."""
        classes = []
        known = {"class_id", "presence", "pixel", "min_component_area", "min_mask_area"}
        for index, entry in enumerate(entries):
            unknown = sorted(set(entry) - known)
            if unknown:
                raise InvalidSetting(f"thresholds for class {index + 1}: unknown keys {unknown}")
            if entry.get("class_id", index + 1) != index + 1:
                raise InvalidSetting(
                    f"thresholds entry {index + 1} has class_id {entry['class_id']}; "
                    "list classes in order 1, 2, ..."
                )
            values = {k: v for k, v in entry.items() if k != "class_id"}
            try:
                classes.append(ClassThresholds(**values))
            except (TypeError, ValueError) as exc:
                raise InvalidSetting(f"thresholds for class {index + 1}: {exc}") from None
        return cls(tuple(classes), head)


@dataclass(frozen=True)
class Component:
    """One connected defect region of one class."""

    class_id: int
    area: int
    bbox: tuple[int, int, int, int]  # x, y, width, height in frame pixels
    score: float  # highest pixel probability inside the region
    mean_score: float  # mean pixel probability inside the region
    centroid: tuple[float, float]  # x, y in frame pixels


@dataclass(frozen=True)
class FrameDefects:
    """Post-processed result of one frame: kept masks, their components, the raw scores.

    Only classes that were kept hold a mask, so a clean frame allocates nothing.
    """

    planes: Mapping[int, UInt8Array]  # class id (1-based) → H×W 0/1 mask, kept classes only
    components: tuple[Component, ...]
    presence: tuple[float, ...]  # presence score per class, before gating
    shape: tuple[int, int]  # frame height, width

    @property
    def classes(self) -> tuple[int, ...]:
        """1-based classes with a kept mask."""
        return tuple(sorted({c.class_id for c in self.components}))

    @property
    def masks(self) -> UInt8Array:
        """All classes as one C×H×W 0/1 array (built on demand; for drawing and scoring)."""
        masks = np.zeros((len(self.presence), *self.shape), np.uint8)
        for class_id, plane in self.planes.items():
            masks[class_id - 1] = plane
        return masks

    def mask(self, class_id: int) -> UInt8Array | None:
        """The kept H×W mask of `class_id`, or None when the class was dropped."""
        return self.planes.get(class_id)

    def area(self, class_id: int) -> int:
        """Kept pixels of class `class_id`."""
        return sum(c.area for c in self.components if c.class_id == class_id)

    def rle(self, class_id: int) -> str:
        """Kaggle RLE of the kept mask of class `class_id` ("" when dropped)."""
        plane = self.planes.get(class_id)
        return encode(plane) if plane is not None else ""


def components(
    binary: UInt8Array, min_area: int
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.float64]]:
    """(labels H×W, stats, centroids) of the 8-connected components of `binary`, small ones
    excluded.

    ``stats`` rows are OpenCV's (x, y, width, height, area) for the kept components and
    ``centroids`` their (x, y); in ``labels`` removed components and background are 0 and
    kept ones are 1..len(stats).
    """
    count, labels, stats, found = cv2.connectedComponentsWithStats(binary, connectivity=8)
    centroids = np.asarray(found, np.float64)
    keep = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= min_area) + 1
    if keep.size == count - 1:
        return labels.astype(np.int32), stats[1:].astype(np.int32), centroids[1:]
    remap = np.zeros(count, np.int32)
    remap[keep] = np.arange(1, keep.size + 1, dtype=np.int32)
    return remap[labels], stats[keep].astype(np.int32), centroids[keep]


def winning_class(probs: FloatArray) -> npt.NDArray[np.intp]:
    """H×W argmax over [1 − Σ probs, probs_1, …, probs_C]: 0 background, c = class c.

    Ties go to the lower index (background first), so a pixel never belongs to two classes.
    """
    background = 1.0 - probs.sum(axis=0, dtype=np.float32)
    best = np.argmax(probs, axis=0)
    top = np.take_along_axis(probs, best[None], axis=0)[0]
    winner: npt.NDArray[np.intp] = np.where(top > background, best + 1, 0)
    return winner


def exclusive_probs(probs: FloatArray) -> FloatArray:
    """`probs` with every pixel zeroed outside its `winning_class`: what a softmax head's
    pixel thresholds see (tuning searches these, so what was tuned is what runs)."""
    winner = winning_class(probs)
    classes = np.arange(1, probs.shape[0] + 1).reshape(-1, 1, 1)
    kept: FloatArray = np.where(winner[None] == classes, probs, 0).astype(probs.dtype)
    return kept


def postprocess(
    probs: FloatArray,
    presence: Sequence[float] | FloatArray,
    config: PostprocessConfig,
    peak: Sequence[float] | FloatArray | None = None,
) -> FrameDefects:
    """Defects of one frame from its C×H×W class probabilities and C presence scores.

    `peak` (the engine's per-class maximum probability, computed inside the graph) lets a
    class whose peak is below its pixel threshold be skipped without reading its H×W map:
    a clean frame then costs a few comparisons (see `defectd bench postprocess`).
    With ``config.head == "softmax"`` a pixel is only a candidate of its argmax class
    (`winning_class`), so the kept masks never overlap.
    """
    if probs.ndim != 3 or probs.shape[0] != config.num_classes:
        raise ValueError(
            f"post-processing expects {config.num_classes}×H×W probabilities, "
            f"got {'×'.join(map(str, probs.shape))}"
        )
    scores = tuple(float(s) for s in np.asarray(presence, dtype=np.float64).reshape(-1))
    if len(scores) != config.num_classes:
        raise ValueError(f"expected {config.num_classes} presence scores, got {len(scores)}")
    peaks = None
    if peak is not None:
        peaks = np.asarray(peak, dtype=np.float64).reshape(-1)
        if peaks.size != config.num_classes:
            raise ValueError(f"expected {config.num_classes} peak scores, got {peaks.size}")
    planes: dict[int, UInt8Array] = {}
    found: list[Component] = []
    winner: npt.NDArray[np.intp] | None = None
    for index, thresholds in enumerate(config.classes):
        if scores[index] < thresholds.presence:
            continue
        if peaks is not None and peaks[index] < thresholds.pixel:
            continue  # no pixel can pass: the full map is never touched
        candidate = probs[index] >= thresholds.pixel
        if config.exclusive:
            if winner is None:
                winner = winning_class(probs)
            candidate &= winner == index + 1
        binary = candidate.view(np.uint8)
        # Label only the box around the candidate pixels: defects are small next to the frame.
        rows = np.flatnonzero(binary.any(axis=1))
        if rows.size == 0:
            continue
        cols = np.flatnonzero(binary.any(axis=0))
        top, left = int(rows[0]), int(cols[0])
        box = (slice(top, int(rows[-1]) + 1), slice(left, int(cols[-1]) + 1))
        labels, stats, centroids = components(
            np.ascontiguousarray(binary[box]), thresholds.min_component_area
        )
        if int(stats[:, cv2.CC_STAT_AREA].sum()) < max(thresholds.min_mask_area, 1):
            continue  # no component left, or too little area for the class
        plane = probs[index][box]
        mask = np.zeros(binary.shape, np.uint8)
        mask[box] = labels > 0
        planes[index + 1] = mask
        for number, (x, y, w, h, area) in enumerate(stats.tolist(), start=1):
            window = (slice(y, y + h), slice(x, x + w))
            inside = plane[window][labels[window] == number].astype(np.float64)
            cx, cy = centroids[number - 1]
            found.append(
                Component(
                    class_id=index + 1,
                    area=int(area),
                    bbox=(x + left, y + top, w, h),
                    score=float(inside.max()),
                    mean_score=float(inside.mean()),
                    centroid=(float(cx) + left, float(cy) + top),
                )
            )
    height, width = probs.shape[1:]
    return FrameDefects(planes, tuple(found), scores, (int(height), int(width)))
