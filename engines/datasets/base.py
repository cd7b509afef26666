"""`Dataset`: the one interface every data set format offers, and `Truth`, one image's labels.

One representation for every format: a sample's labels are masks C×H×W (uint8 0/1, plane
``c - 1`` is class ``c``), as Severstal's run-length rows decode and as training takes them.
Label maps (exclusive classes) expand into planes on reading; `to_label_map` folds exclusive
masks back into one H×W map. Images are grey uint8 H×W at their own size: nothing is resized,
and sizes may differ within one set.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from defectd.engines.datasets.imagesize import image_size
from defectd.engines.datasets.spec import DatasetSpec
from defectd.engines.errors import InvalidInput
from defectd.engines.severstal import DatasetError, Sample, read_any

Masks = npt.NDArray[np.uint8]


@dataclass
class Truth:
    """One image's labels as read: masks C×H×W (None when unusable), what is wrong, notes.

    `problems` and `notes` are ``file: text`` lines; a problem makes the image unusable for
    training, a note is worth knowing (an empty mask in a defect folder).
    """

    masks: Masks | None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Dataset(ABC):
    """A labelled data set in any format: images by id, their masks, and the spec.

    `listing_problems` and `notices` were found while listing the files (a mask without an
    image, a file that is neither); `check` reads every pixel and finds the rest.
    """

    def __init__(
        self,
        root: Path,
        spec: DatasetSpec,
        image_ids: list[str],
        listing_problems: list[str] | None = None,
        notices: list[str] | None = None,
    ) -> None:
        self.root = root
        self.spec = spec
        self.image_ids = image_ids
        self.listing_problems = listing_problems or []
        self.notices = notices or []

    @property
    def format(self) -> str:
        """The format's name (one of `FORMATS`)."""
        return self.spec.format

    def __len__(self) -> int:
        return len(self.image_ids)

    @abstractmethod
    def image_path(self, image_id: str) -> Path:
        """The file of `image_id`."""

    @abstractmethod
    def load_truth(self, image_id: str, shape: tuple[int, int] | None) -> Truth:
        """The labels of `image_id`, checked against its image's (H, W) `shape` when known."""

    def size(self, image_id: str) -> tuple[int, int]:
        """(H, W) of `image_id`, from the file header where the format allows (no decoding)."""
        return image_size(self.image_path(image_id))

    def read_image(self, image_id: str) -> npt.NDArray[np.uint8]:
        """The grey H×W image; `DatasetError` naming the file when it cannot be read."""
        return read_any(self.image_path(image_id))

    def read_masks(self, image_id: str, shape: tuple[int, int]) -> Masks:
        """The C×H×W masks of `image_id`; `DatasetError` with every problem they have."""
        truth = self.load_truth(image_id, shape)
        if truth.problems or truth.masks is None:
            raise DatasetError("; ".join(truth.problems) or f"{image_id}: no labels")
        return truth.masks

    def sample(self, index: int) -> Sample:
        """Image `index` with its masks and the classes present (`Sample.classes`)."""
        image_id = self.image_ids[index]
        image = self.read_image(image_id)
        return Sample(image_id, image, self.read_masks(image_id, (image.shape[0], image.shape[1])))


def to_label_map(masks: Masks) -> npt.NDArray[np.uint8]:
    """Exclusive C×H×W masks as one H×W map (0 background, c = class c).

    `InvalidInput` when two classes share a pixel (the masks are not exclusive).
    """
    if masks.ndim != 3:
        raise InvalidInput(f"expected C×H×W masks, got shape {masks.shape}")
    if len(masks) and int(masks.astype(np.uint16).sum(axis=0).max()) > 1:
        raise InvalidInput("two classes share a pixel: these masks are not exclusive")
    labels = np.zeros(masks.shape[1:], dtype=np.uint8)
    for index, plane in enumerate(masks):
        labels[plane != 0] = index + 1
    return labels
