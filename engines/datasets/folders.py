"""`FolderDataset`: images and mask files paired by stem, the shape behind three formats.

``image-mask-folders``, ``side-by-side`` and ``class-folders`` differ only in where they look
for the pairs (engines/datasets/layouts.py lists them); reading and checking a pair is the same
for all three, and lives here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from defectd.engines.datasets.base import Dataset, Masks, Truth
from defectd.engines.datasets.maskfile import binary_planes, label_map_planes, read_mask
from defectd.engines.datasets.spec import BINARY_THRESHOLD, DatasetSpec


@dataclass(frozen=True)
class Entry:
    """One image and where its mask is.

    `mask` is None when there is no mask file (`expected_mask` says where it would be).
    `class_id` is the class a binary mask marks (class-folders: the folder's class); None for
    label maps and for defect-free folders. `defect_free` says the image is declared clean
    (a no_defect folder, or no mask under the missing-mask rule); `folder` is its class folder.
    """

    image_id: str
    image: Path
    mask: Path | None
    expected_mask: Path
    class_id: int | None = None
    defect_free: bool = False
    folder: str | None = None


def _size_text(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}×{shape[0]}"


class FolderDataset(Dataset):
    """A data set of image files, each paired with a mask file of the same stem (or none)."""

    def __init__(
        self,
        root: Path,
        spec: DatasetSpec,
        entries: list[Entry],
        listing_problems: list[str] | None = None,
        notices: list[str] | None = None,
    ) -> None:
        self.entries = {e.image_id: e for e in entries}
        super().__init__(root, spec, [e.image_id for e in entries], listing_problems, notices)

    def image_path(self, image_id: str) -> Path:
        """The image file of `image_id`."""
        return self.entries[image_id].image

    def load_truth(self, image_id: str, shape: tuple[int, int] | None) -> Truth:
        """Read, check and decode the mask of `image_id` (zeros when it is declared clean)."""
        entry = self.entries[image_id]
        planes = self.spec.num_classes
        if entry.mask is None:
            if entry.defect_free:
                empty = None if shape is None else np.zeros((planes, *shape), dtype=np.uint8)
                return Truth(empty)
            rule = "" if entry.folder else " (or set no_defect_rule: missing-mask in dataset.yaml)"
            return Truth(None, [f"{entry.image}: no mask: expected {entry.expected_mask}{rule}"])
        mask, problem = read_mask(entry.mask)
        if mask is None:
            return Truth(None, [f"{entry.mask}: {problem}"])
        truth = Truth(None)
        if shape is not None and mask.shape != shape:
            truth.problems.append(
                f"{entry.mask}: mask is {_size_text(mask.shape)}, its image {entry.image.name} "
                f"is {_size_text(shape)}"
            )
        if self.spec.mask_kind == "label_map":
            masks, problem = label_map_planes(mask, self.spec.classes)
        else:
            # Outside class-folders a binary mask set has one class: class 1.
            class_id = entry.class_id if entry.folder is not None else 1
            masks, problem = binary_planes(mask, planes, class_id)
        if problem is not None:
            truth.problems.append(f"{entry.mask}: {problem}")
        if entry.folder is not None:
            self._folder_rules(entry, mask, masks, truth)
        if not truth.problems:
            truth.masks = masks
        return truth

    def _folder_rules(
        self, entry: Entry, mask: npt.NDArray[np.uint8], masks: Masks, truth: Truth
    ) -> None:
        """A class folder's mask must agree with its folder."""
        if entry.defect_free:
            marked = int(np.count_nonzero(masks.any(axis=0))) if len(masks) else 0
            if self.spec.mask_kind == "binary":
                marked = int(np.count_nonzero(mask > BINARY_THRESHOLD))
            if marked:
                truth.problems.append(
                    f"{entry.mask}: {marked} px marked as defect, but its folder {entry.folder} "
                    "holds defect-free images (no_defect)"
                )
        elif entry.class_id is not None and not masks[entry.class_id - 1].any():
            name = self.spec.classes[entry.class_id - 1].name
            truth.notes.append(
                f"{entry.mask}: mask is empty: the image counts as defect-free although its "
                f"folder {entry.folder} is class {entry.class_id} ({name})"
            )
