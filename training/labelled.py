"""Any labelled data set `engines.datasets.open_dataset` reads, as training data.

The Severstal layout keeps its own path (`training.data`); every other format comes through
here: label maps (exclusive classes, trained with a softmax head) or binary masks, at any
image size, sizes differing within the set.

- `open_labelled` checks the whole set once (`engines.datasets.check`) and refuses one with
  problems; the report's classes per image and duplicate groups drive the split.
- `CropDataset` gives training crops (`--crop`): an image smaller than the crop is padded,
  its padding marked `IGNORE` in every mask plane so the loss skips it; then the flips and
  brightness/contrast of `training.augment`. For validation it gives the whole image at its
  native size, padded up to a multiple of the network's stride (masks are never resized).
- `collate_padded` batches images of different sizes by padding them to the largest.

Images are padded with the training grey mean, what the exported graph pads with
(`training.model.graph`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor
from torch.utils.data import Dataset as TorchDataset

from defectd.engines.datasets import Dataset, DatasetReport, check, open_dataset
from defectd.engines.masks import present_classes
from defectd.training.augment import (
    AugmentConfig,
    WorkerRandom,
    defect_blackout,
    flips_and_tone,
)
from defectd.training.config import TrainError
from defectd.training.losses import IGNORE

Image = npt.NDArray[np.uint8]
Masks = npt.NDArray[np.uint8]


@dataclass
class LabelledSet:
    """A checked data set with what training asks of it (the `SeverstalDataset` calls)."""

    dataset: Dataset
    report: DatasetReport

    @property
    def image_ids(self) -> list[str]:
        """Ids of the images whose labels could be read (all of them: problems refuse)."""
        return sorted(self.report.classes_by_image)

    @property
    def num_classes(self) -> int:
        return self.dataset.spec.num_classes

    @property
    def names(self) -> tuple[str, ...]:
        return self.dataset.spec.names

    @property
    def exclusive(self) -> bool:
        return self.dataset.spec.exclusive

    @property
    def common_size(self) -> tuple[int, int] | None:
        """(H, W) when every image has it, else None."""
        return next(iter(self.report.sizes)) if len(self.report.sizes) == 1 else None

    @property
    def largest_size(self) -> tuple[int, int]:
        """The largest height and width over the set."""
        return max(h for h, _ in self.report.sizes), max(w for _, w in self.report.sizes)

    def classes(self, image_id: str) -> tuple[int, ...]:
        return self.report.classes_by_image[image_id]

    def load_image(self, image_id: str) -> Image:
        return self.dataset.read_image(image_id)

    def load_masks(self, image_id: str) -> Masks:
        return self.dataset.read_masks(image_id, self.dataset.size(image_id))

    def positive_weights(self, cap: float = 10.0) -> list[float]:
        """BCE pos_weight per class, sqrt(negative / positive pixels) in [1, cap], over all
        images (the report's counts)."""
        total = sum(h * w * n for (h, w), n in self.report.sizes.items())
        weights = []
        for count in self.report.classes:
            ratio = (total - count.pixels) / count.pixels if count.pixels else cap**2
            weights.append(float(np.clip(ratio**0.5, 1.0, cap)))
        return weights


def open_labelled(path: Path | str, spec: Path | str | None = None) -> LabelledSet:
    """The data set at `path` (described by `spec`, a dataset.yaml kept elsewhere, when
    given), checked; TrainError naming the first problem when it has any."""
    dataset = open_dataset(path, spec)
    report = check(dataset)
    if report.problems:
        raise TrainError(
            f"{path}: {len(report.problems)} problem(s), first: {report.problems[0]}; "
            f"see them all with `defectd dataset check {path}`"
        )
    if dataset.spec.num_classes < 1:
        raise TrainError(f"{path}: no classes in the masks: nothing to train")
    return LabelledSet(dataset, report)


def pad_to(image: Image, masks: Masks, shape: tuple[int, int], fill: int) -> tuple[Image, Masks]:
    """`image` and `masks` padded at the bottom and right to at least `shape` (H, W): the
    image with `fill`, the masks with `IGNORE`."""
    bottom = max(0, shape[0] - image.shape[0])
    right = max(0, shape[1] - image.shape[1])
    if not (bottom or right):
        return image, masks
    padded = np.pad(image, ((0, bottom), (0, right)), constant_values=fill)
    padded_masks = np.pad(masks, ((0, 0), (0, bottom), (0, right)), constant_values=IGNORE)
    return padded, padded_masks


def stride_shape(shape: tuple[int, int], stride: int) -> tuple[int, int]:
    """`shape` rounded up to multiples of `stride`."""
    return -(-shape[0] // stride) * stride, -(-shape[1] // stride) * stride


def crop_view(
    image: Image, masks: Masks, config: AugmentConfig, fill: int, rng: np.random.Generator
) -> tuple[Image, Masks]:
    """One training view: blackout, pad to the crop, crop (aimed at a defect with
    ``defect_crop``), flips, brightness/contrast; padding is `IGNORE` in the masks."""
    present = present_classes(masks)
    if present and rng.random() < config.blackout:
        image, masks = defect_blackout(image, masks, int(rng.choice(present)) - 1, rng)
    if config.crop is not None:
        crop_h, crop_w = config.crop
        image, masks = pad_to(image, masks, config.crop, fill)
        height, width = image.shape
        top = int(rng.integers(0, height - crop_h + 1))
        left = int(rng.integers(0, width - crop_w + 1))
        present = present_classes(np.where(masks == IGNORE, 0, masks).astype(np.uint8))
        if present and rng.random() < config.defect_crop:
            rows, cols = np.nonzero(masks[int(rng.choice(present)) - 1] == 1)
            pick = int(rng.integers(0, rows.size))
            row, col = int(rows[pick]), int(cols[pick])
            top = int(rng.integers(max(0, row - crop_h + 1), min(row, height - crop_h) + 1))
            left = int(rng.integers(max(0, col - crop_w + 1), min(col, width - crop_w) + 1))
        image = image[top : top + crop_h, left : left + crop_w]
        masks = masks[:, top : top + crop_h, left : left + crop_w]
    return flips_and_tone(image, masks, config, rng)


class CropDataset(TorchDataset[tuple[Tensor, Tensor]]):
    """(image 1×H×W uint8, masks C×H×W uint8 with `IGNORE` padding) for listed images.

    With `augmentation`: random training views (`crop_view`); without: the native image
    padded up to multiples of `stride`.
    """

    def __init__(
        self,
        data: LabelledSet,
        image_ids: Sequence[str],
        fill: int,
        stride: int,
        augmentation: AugmentConfig | None = None,
    ) -> None:
        self.data = data
        self.image_ids = list(image_ids)
        self.fill = fill
        self.stride = stride
        self.augmentation = augmentation
        self._random = WorkerRandom()

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image_id = self.image_ids[index]
        image = self.data.load_image(image_id)
        masks = self.data.load_masks(image_id)
        if self.augmentation is not None:
            image, masks = crop_view(
                image, masks, self.augmentation, self.fill, self._random.generator()
            )
        else:
            shape = stride_shape((image.shape[0], image.shape[1]), self.stride)
            image, masks = pad_to(image, masks, shape, self.fill)
        return torch.from_numpy(np.ascontiguousarray(image)).unsqueeze(0), torch.from_numpy(
            np.ascontiguousarray(masks)
        )


def collate_padded(items: Sequence[tuple[Tensor, Tensor]], fill: int = 0) -> tuple[Tensor, Tensor]:
    """A batch of images of different sizes, each padded to the largest (images with
    `fill`, masks with `IGNORE`); same-size items are stacked as they are."""
    height = max(int(image.shape[1]) for image, _ in items)
    width = max(int(image.shape[2]) for image, _ in items)
    images = torch.full((len(items), 1, height, width), fill, dtype=torch.uint8)
    masks = torch.full(
        (len(items), int(items[0][1].shape[0]), height, width), IGNORE, dtype=torch.uint8
    )
    for index, (image, mask) in enumerate(items):
        h, w = int(image.shape[1]), int(image.shape[2])
        images[index, :, :h, :w] = image
        masks[index, :, :h, :w] = mask
    return images, masks


def sample_ids(data: LabelledSet, image_ids: Sequence[str]) -> list[str]:
    """A few of `image_ids` with every class among them and a clean one when there is one
    (golden and parity frames at export), at most num_classes + 1."""
    chosen: list[str] = []
    seen: set[int] = set()
    clean = False
    for image_id in image_ids:
        classes = set(data.classes(image_id))
        if (classes - seen) or (not classes and not clean):
            chosen.append(image_id)
            seen |= classes
            clean = clean or not classes
    return chosen[: data.num_classes + 1] or list(image_ids[:2])
