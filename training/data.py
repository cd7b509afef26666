"""Training and validation frames as torch datasets, and the class-balancing sampler weights.

Training items are augmented random crops (`training.augment`); validation items are whole
frames, untouched. Items are uint8 tensors: normalisation happens inside the model wrapper
(`training.model.graph`), exactly as in the exported engine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor
from torch.utils.data import Dataset

from defectd.engines.errors import InvalidInput
from defectd.engines.rle import decode_runs
from defectd.engines.severstal import SeverstalDataset
from defectd.training.augment import AugmentConfig, WorkerRandom, augment


class FrameDataset(Dataset[tuple[Tensor, Tensor]]):
    """(image 1×H×W uint8, masks C×H×W uint8) for the listed images of a Severstal folder.

    With an `AugmentConfig` every read is a fresh random view (crop, flips, ...); the random
    stream is seeded from torch's per-worker seed, so a run is reproducible for a given
    `--seed` and worker count.
    """

    def __init__(
        self,
        dataset: SeverstalDataset,
        image_ids: Sequence[str],
        augmentation: AugmentConfig | None = None,
    ) -> None:
        self.dataset = dataset
        self.image_ids = list(image_ids)
        self.augmentation = augmentation
        self._random = WorkerRandom()

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image_id = self.image_ids[index]
        image = self.dataset.load_image(image_id)
        masks = self.dataset.load_masks(image_id)
        if self.augmentation is not None:
            image, masks = augment(image, masks, self.augmentation, self._random.generator())
        return torch.from_numpy(image).unsqueeze(0), torch.from_numpy(masks)


def sampling_weights(
    classes_by_image: Sequence[Sequence[int]], num_classes: int, power: float = 0.75
) -> list[float]:
    """Per-image sampling weights that lift rare classes (Severstal's class 2 is in 2%).

    An image's weight is (1/frequency)**power of the rarest class it holds (defect-free
    images count as one more "class"): power 0 samples as the data is, 1 gives every class
    the same share; 0.75 shows rare classes several times more often than the data does
    without drowning the common ones or the clean frames.
    """
    counts: Counter[int] = Counter()
    for classes in classes_by_image:
        counts.update(classes or (0,))
    total = max(len(classes_by_image), 1)
    weights = []
    for classes in classes_by_image:
        rarest = min(counts[c] for c in (classes or (0,)))
        weights.append(float((total / rarest) ** power))
    return weights


def positive_weights(
    dataset: SeverstalDataset, image_ids: Sequence[str], cap: float = 10.0
) -> list[float]:
    """BCE pos_weight per class: sqrt(negative / positive pixels) over the images, in [1, cap].

    Counted from the label runs, without decoding a mask.
    """
    height, width = dataset.shape
    size = height * width
    positive = np.zeros(dataset.num_classes, np.float64)
    for image_id in image_ids:
        for class_id in dataset.classes(image_id):
            _, lengths = decode_runs(dataset.labels.rle(image_id, class_id), size)
            positive[class_id - 1] += lengths.sum()
    total = float(size * max(len(image_ids), 1))
    weights = []
    for pixels in positive:
        ratio = (total - pixels) / pixels if pixels else cap**2
        weights.append(float(np.clip(ratio**0.5, 1.0, cap)))
    return weights


class ImageSource(Protocol):
    """Anything that reads grey images by id (`SeverstalDataset`, `labelled.LabelledSet`)."""

    def load_image(self, image_id: str) -> npt.NDArray[np.uint8]: ...


def grey_statistics(dataset: ImageSource, image_ids: Sequence[str]) -> tuple[float, float]:
    """(mean, std) of the grey values on a 0..1 scale, over at most 200 evenly spaced images."""
    if not image_ids:
        raise InvalidInput("no images to measure the grey statistics on")
    step = max(1, len(image_ids) // 200)
    pixels = np.concatenate(
        [dataset.load_image(i).reshape(-1)[::7] for i in list(image_ids)[::step]]
    ).astype(np.float64)
    return float(pixels.mean() / 255.0), float(max(pixels.std() / 255.0, 1e-3))
