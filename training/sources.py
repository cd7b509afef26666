"""Where a run's frames come from: a Severstal-layout folder (today's path, unchanged) or any
other labelled data set (`training.labelled`), behind the few calls the trainer makes.

`open_training_data` picks the path: a folder `engines.datasets` detects as ``severstal`` (or
one it cannot detect at all, which then fails with the Severstal reader's message) goes to
`SeverstalDataset`; any other format to `LabelledSet`. For the latter the data decide the
model's classes and head (`fit_model`: softmax for exclusive classes), the split keeps
duplicate images together, and the checkpoint records the class names, the input size and a
few sample images (`data_info`) for export.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset as TorchDataset

from defectd.engines.datasets import detect_format
from defectd.engines.datasets.spec import SEVERSTAL
from defectd.engines.errors import InvalidInput
from defectd.engines.severstal import SeverstalDataset
from defectd.training.augment import AugmentConfig
from defectd.training.config import TrainError
from defectd.training.data import FrameDataset, positive_weights
from defectd.training.labelled import (
    CropDataset,
    LabelledSet,
    collate_padded,
    open_labelled,
    sample_ids,
    stride_shape,
)
from defectd.training.model.model import ModelConfig
from defectd.training.split import grouped_split, stratified_split

Batch = tuple[torch.Tensor, torch.Tensor]
Collate = Callable[[Sequence[Batch]], Batch]


@dataclass
class TrainingData:
    """The frames of a run and what the trainer asks of them."""

    frames: SeverstalDataset | LabelledSet

    def __len__(self) -> int:
        return len(self.frames.image_ids)

    @property
    def image_ids(self) -> list[str]:
        return list(self.frames.image_ids)

    @property
    def num_classes(self) -> int:
        return self.frames.num_classes

    def classes(self, image_id: str) -> tuple[int, ...]:
        return tuple(self.frames.classes(image_id))

    def fit_model(self, model: ModelConfig) -> ModelConfig:
        """`model` with the classes and head of the data (Severstal: `model` as it is)."""
        if not isinstance(self.frames, LabelledSet):
            return model
        head = "softmax" if self.frames.exclusive else "sigmoid"
        return replace(model, num_classes=self.frames.num_classes, head=head)

    def check_model(self, model: ModelConfig, where: str) -> None:
        """TrainError when `model` (from `where`) cannot learn these classes."""
        fitted = self.fit_model(model)
        if (fitted.num_classes, fitted.head) != (model.num_classes, model.head):
            raise TrainError(
                f"{where} has {model.num_classes} classes with a {model.head} head; this data "
                f"needs {fitted.num_classes} with a {fitted.head} head: train a new model"
            )

    def check_crop(self, augment: AugmentConfig, stride: int) -> None:
        """TrainError when the crop cannot enter the network (other layouts only)."""
        crop = augment.crop
        labelled = isinstance(self.frames, LabelledSet)
        if labelled and crop is not None and (crop[0] % stride or crop[1] % stride):
            fixed = "x".join(map(str, stride_shape(crop, stride)))
            raise TrainError(
                f"--crop {crop[0]}x{crop[1]} is not a multiple of the output stride "
                f"{stride}: use e.g. --crop {fixed}"
            )

    def split(self, val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
        """(train, validation) ids stratified by classes; duplicates kept on one side."""
        classes = {i: self.classes(i) for i in self.image_ids}
        if isinstance(self.frames, LabelledSet):
            groups = self.frames.report.split_groups()
            return grouped_split(classes, groups, val_fraction, seed)
        return stratified_split(classes, val_fraction, seed)

    def positive_weights(self, image_ids: Sequence[str]) -> list[float]:
        if isinstance(self.frames, LabelledSet):
            return self.frames.positive_weights()
        return positive_weights(self.frames, image_ids)

    def dataset(
        self,
        image_ids: Sequence[str],
        fill: int,
        stride: int,
        augment: AugmentConfig | None = None,
    ) -> TorchDataset[Batch]:
        """Training items (with `augment`) or validation items of `image_ids`."""
        if isinstance(self.frames, LabelledSet):
            return CropDataset(self.frames, image_ids, fill, stride, augment)
        return FrameDataset(self.frames, image_ids, augment)

    def collate(self, fill: int) -> Collate | None:
        """The batch collation (None: torch's default stacking)."""
        if isinstance(self.frames, LabelledSet):
            return partial(collate_padded, fill=fill)
        return None

    def data_info(self, train_ids: Sequence[str]) -> dict[str, Any] | None:
        """The checkpoint's ``data`` entry: format, exclusive, class names, input size and
        sample ids (export's input spec, card classes and golden frames); None for
        Severstal, whose export stays as it was."""
        if not isinstance(self.frames, LabelledSet):
            return None
        common = self.frames.common_size
        return {
            "format": self.frames.dataset.format,
            "exclusive": self.frames.exclusive,
            "classes": list(self.frames.names),
            "input_size": list(common or self.frames.largest_size),
            "same_size": common is not None,
            "sample_ids": sample_ids(self.frames, train_ids),
        }


def open_training_data(path: Path | str, spec: Path | str | None = None) -> TrainingData:
    """The --data folder as training data (see the module docstring for which path); `spec`
    is a dataset.yaml kept outside the folder (--spec)."""
    try:
        found = detect_format(path)
    except (InvalidInput, FileNotFoundError):
        found = SEVERSTAL  # the Severstal reader names what is missing, as it always has
    if found == SEVERSTAL:
        return TrainingData(SeverstalDataset(path))
    return TrainingData(open_labelled(path, spec))
