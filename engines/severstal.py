"""The Severstal dataset layout: a folder with ``train.csv`` and ``train_images/``.

Images without rows in train.csv are defect-free (that is how Kaggle's file works). Rows whose
image file is missing are kept out of the dataset and listed in `missing_images`, never dropped
silently. Pixels are read lazily, one image at a time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from defectd.engines.errors import UserError
from defectd.engines.labels import LabelTable, read_labels
from defectd.engines.masks import present_classes
from defectd.engines.rle import SEVERSTAL_SHAPE, decode

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class DatasetError(UserError, ValueError):
    """A dataset folder or image that does not match the Severstal layout."""


@dataclass(frozen=True)
class Sample:
    """One frame with its truth: grey image H×W and masks C×H×W (uint8 0/1)."""

    image_id: str
    image: npt.NDArray[np.uint8]
    masks: npt.NDArray[np.uint8]

    @property
    def classes(self) -> tuple[int, ...]:
        """1-based classes with at least one labelled pixel."""
        return present_classes(self.masks)


def list_images(folder: Path) -> list[str]:
    """File names of the images in `folder` (jpg/jpeg/png), sorted."""
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def read_any(path: Path) -> npt.NDArray[np.uint8]:
    """A grey H×W image of any size; DatasetError naming the file when it cannot be read."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise DatasetError(f"{path}: cannot be read as an image")
    return np.asarray(image, dtype=np.uint8)


def read_grey(path: Path, shape: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """A grey H×W image; DatasetError naming the file if unreadable or not `shape`."""
    image = read_any(path)
    if image.shape != shape:
        height, width = image.shape
        raise DatasetError(f"{path}: image is {width}×{height}, expected {shape[1]}×{shape[0]}")
    return np.asarray(image, dtype=np.uint8)


class SeverstalDataset:
    """A Severstal-layout folder as an indexable dataset of `Sample`s."""

    def __init__(
        self,
        root: Path | str,
        shape: tuple[int, int] = SEVERSTAL_SHAPE,
        num_classes: int = 4,
        labels_name: str = "train.csv",
        images_name: str = "train_images",
    ) -> None:
        self.root = Path(root)
        self.shape = shape
        self.num_classes = num_classes
        self.images_dir = self.root / images_name
        labels_path = self.root / labels_name
        if not labels_path.is_file() or not self.images_dir.is_dir():
            raise FileNotFoundError(
                f"{self.root} is not a Severstal-layout dataset: it needs {labels_name} and "
                f"{images_name}/ (create one with `defectd synth --out {self.root}`)"
            )
        self.labels: LabelTable = read_labels(labels_path, num_classes, shape)
        self.image_ids: list[str] = list_images(self.images_dir)
        on_disk = set(self.image_ids)
        self.missing_images: list[str] = [i for i in self.labels.image_ids if i not in on_disk]
        if self.missing_images:
            log.warning(
                "%s: %d image(s) named in %s have no file in %s/ and are left out",
                self.root,
                len(self.missing_images),
                labels_name,
                images_name,
            )

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> Sample:
        image_id = self.image_ids[index]
        return Sample(image_id, self.load_image(image_id), self.load_masks(image_id))

    def classes(self, image_id: str) -> tuple[int, ...]:
        """Classes present in `image_id`, from the labels alone (no pixels read)."""
        return self.labels.classes(image_id)

    def load_image(self, image_id: str) -> npt.NDArray[np.uint8]:
        """The grey H×W image; DatasetError naming the file if unreadable or the wrong size."""
        return read_grey(self.images_dir / image_id, self.shape)

    def load_masks(self, image_id: str) -> npt.NDArray[np.uint8]:
        """The C×H×W uint8 masks of `image_id` decoded from its rows (zeros if it has none)."""
        masks = np.zeros((self.num_classes, *self.shape), dtype=np.uint8)
        for class_id in self.labels.classes(image_id):
            masks[class_id - 1] = decode(self.labels.rle(image_id, class_id), self.shape)
        return masks

    def check_images(self) -> list[str]:
        """Read every image once; return one problem string per unreadable or mis-sized file."""
        problems = []
        for image_id in self.image_ids:
            try:
                self.load_image(image_id)
            except DatasetError as exc:
                problems.append(str(exc))
        return problems
