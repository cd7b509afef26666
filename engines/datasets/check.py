"""`check`: read every image and mask of a data set once and report every problem together.

A problem makes an image unusable (unreadable file, mask of another size, mask values that are
no class, an image without a mask, a mask without an image, ...); a notice is worth knowing
but blocks nothing: exact duplicate images (to be kept on one side of a split:
`DatasetReport.duplicate_groups`, `DatasetReport.split_groups`), empty masks in a defect
folder, files that were not read. Nothing is skipped without a line saying so.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from defectd.engines.datasets.base import Dataset, Masks
from defectd.engines.severstal import DatasetError

# progress(done, total), called after each image.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ClassCount:
    """One class over the data set: images holding it, its pixels and their share of all."""

    id: int
    name: str
    images: int
    pixels: int
    pixel_share: float


@dataclass
class DatasetReport:
    """What `check` found: the counts, every problem and notice, the duplicate groups.

    `sizes` counts images per (H, W); `classes_by_image` holds the classes present in each
    image whose labels could be read (what a stratified split needs); `defect_free` counts
    those with no class at all. Counts cover the images and masks that could be read.
    """

    root: str
    format: str
    spec_source: str
    mask_kind: str
    exclusive: bool
    images: int
    classes: list[ClassCount]
    sizes: dict[tuple[int, int], int]
    defect_free: int
    problems: list[str]
    notices: list[str]
    duplicate_groups: list[tuple[str, ...]]
    classes_by_image: dict[str, tuple[int, ...]]
    seconds: float

    @property
    def ok(self) -> bool:
        """True when no problem was found (notices do not count)."""
        return not self.problems

    def split_groups(self) -> dict[str, str]:
        """Image id → the id naming its group: duplicates share one, every other image is its
        own. A split that keeps groups together keeps duplicates on one side."""
        groups = {image_id: image_id for image_id in self.classes_by_image}
        for group in self.duplicate_groups:
            groups.update({image_id: group[0] for image_id in group})
        return groups

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (``--json``); `classes_by_image` is left out."""
        sizes = sorted(self.sizes.items(), key=lambda item: (-item[1], item[0]))
        return {
            "root": self.root,
            "format": self.format,
            "spec_source": self.spec_source,
            "mask_kind": self.mask_kind,
            "exclusive": self.exclusive,
            "images": self.images,
            "defect_free": self.defect_free,
            "classes": [vars(c) for c in self.classes],
            "sizes": [{"height": h, "width": w, "images": n} for (h, w), n in sizes],
            "problems": self.problems,
            "notices": self.notices,
            "duplicate_groups": [list(g) for g in self.duplicate_groups],
            "seconds": round(self.seconds, 3),
        }


def _digest(data: bytes, shape: tuple[int, ...]) -> bytes:
    return hashlib.blake2b(data, digest_size=16, person=repr(shape).encode()[:16]).digest()


def _overlap(masks: Masks) -> int:
    """Pixels that more than one class claims."""
    return int(np.count_nonzero(masks.sum(axis=0, dtype=np.uint16) > 1))


def _label_difference(dataset: Dataset, group: tuple[str, ...]) -> str:
    """How the labels of a duplicate group compare (read again: groups are few)."""
    masks = [dataset.load_truth(i, dataset.size(i)).masks for i in group]
    first = masks[0]
    if first is None or any(m is None or m.shape != first.shape for m in masks):
        return "not all of their labels could be read"
    differing = max(int(np.count_nonzero((m != first).any(axis=0))) for m in masks if m is not None)
    return f"their masks differ in {differing} px" if differing else "their masks are the same"


def _duplicate_notices(dataset: Dataset, groups: list[tuple[str, ...]]) -> list[str]:
    notices = []
    for group in groups:
        first, *others = group
        notices.append(
            f"{dataset.image_path(first)}: the same pixels as {', '.join(others)} "
            f"(duplicates: keep them on one side of a split; {_label_difference(dataset, group)})"
        )
    return notices


def check(dataset: Dataset, progress: Progress | None = None) -> DatasetReport:
    """Read every image and mask of `dataset` once; return the counts and all problems."""
    start = time.perf_counter()
    spec = dataset.spec
    count = spec.num_classes
    problems = list(dataset.listing_problems)
    notices = list(dataset.notices)
    images_with = np.zeros(count, dtype=np.int64)
    pixels = np.zeros(count, dtype=np.int64)
    total_pixels = 0
    sizes: Counter[tuple[int, int]] = Counter()
    by_content: dict[bytes, list[str]] = {}
    classes_by_image: dict[str, tuple[int, ...]] = {}
    defect_free = 0
    for index, image_id in enumerate(dataset.image_ids):
        shape: tuple[int, int] | None = None
        try:
            image = dataset.read_image(image_id)
        except DatasetError as exc:
            problems.append(str(exc))
        else:
            shape = (int(image.shape[0]), int(image.shape[1]))
            sizes[shape] += 1
            by_content.setdefault(_digest(image.tobytes(), shape), []).append(image_id)
        truth = dataset.load_truth(image_id, shape)
        problems += truth.problems
        notices += truth.notes
        masks = truth.masks
        if shape is not None and masks is not None:
            if spec.exclusive and count > 1 and (shared := _overlap(masks)):
                problems.append(
                    f"{dataset.image_path(image_id)}: {shared} px belong to two classes, but "
                    "the classes are exclusive (exclusive: false in dataset.yaml if they may)"
                )
            per_class = np.count_nonzero(masks.reshape(count, -1), axis=1)
            images_with += per_class > 0
            pixels += per_class
            total_pixels += shape[0] * shape[1]
            present = tuple(int(c) + 1 for c in np.flatnonzero(per_class))
            classes_by_image[image_id] = present
            defect_free += not present
        if progress is not None:
            progress(index + 1, len(dataset))
    groups = sorted(tuple(ids) for ids in by_content.values() if len(ids) > 1)
    notices += _duplicate_notices(dataset, groups)
    classes = [
        ClassCount(
            c.id,
            c.name,
            int(images_with[i]),
            int(pixels[i]),
            float(pixels[i] / total_pixels) if total_pixels else 0.0,
        )
        for i, c in enumerate(spec.classes)
    ]
    return DatasetReport(
        root=str(dataset.root),
        format=dataset.format,
        spec_source=spec.source,
        mask_kind=spec.mask_kind,
        exclusive=spec.exclusive,
        images=len(dataset),
        classes=classes,
        sizes=dict(sizes),
        defect_free=defect_free,
        problems=problems,
        notices=notices,
        duplicate_groups=groups,
        classes_by_image=classes_by_image,
        seconds=time.perf_counter() - start,
    )
