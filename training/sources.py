"""Where a run's frames come from: a Severstal-layout folder (today's path, unchanged) or any
other labelled data set (`training.labelled`), behind the few calls the trainer makes.

`open_training_data` picks the path: a folder `engines.datasets` detects as ``severstal`` (or
one it cannot detect at all, which then fails with the Severstal reader's message) goes to
`SeverstalDataset`; any other format to `LabelledSet`. For the latter the data decide the
model's classes and head (`fit_model`: softmax for exclusive classes), the split keeps
duplicate images together, and the checkpoint records the class names, the input size and a
few sample images (`data_info`) for export.

With more than one --data (`training.mixed`) every source must be a Severstal-layout folder;
they become one `MixedFrames`, validated on the first source only, each source drawn for its
weight's share of the training crops.
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
from defectd.training.data import FrameDataset, positive_weights, sampling_weights
from defectd.training.labelled import (
    CropDataset,
    LabelledSet,
    collate_padded,
    open_labelled,
    sample_ids,
    stride_shape,
)
from defectd.training.mixed import MixedFrames, Source, mix_weights, parse_source
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
        if isinstance(self.frames, MixedFrames):
            # Validation from the first source only; the others are training frames.
            first = {i: classes[i] for i in self.frames.ids_of(0)}
            train, val = stratified_split(first, val_fraction, seed)
            others = [i for i in self.image_ids if self.frames.source_of(i) > 0]
            return train + others, val
        return stratified_split(classes, val_fraction, seed)

    def sampling_weights(self, image_ids: Sequence[str], power: float) -> list[float]:
        """Per-image draw weights of the training sampler: class-balanced (`power`,
        --balance) over `image_ids`; for a mix, balanced within each source and scaled so
        each source gets its weight's share of the draws."""
        if not isinstance(self.frames, MixedFrames):
            classes = [self.classes(i) for i in image_ids]
            return sampling_weights(classes, self.num_classes, power)
        sources = [self.frames.source_of(i) for i in image_ids]
        inner = [0.0] * len(image_ids)
        for source in set(sources):
            members = [n for n, s in enumerate(sources) if s == source]
            balanced = sampling_weights(
                [self.classes(image_ids[n]) for n in members], self.num_classes, power
            )
            for n, weight in zip(members, balanced, strict=True):
                inner[n] = weight
        return mix_weights(inner, sources, self.frames.weights)

    def mixed_sources(self) -> list[Source]:
        """The folders of a mix with their image counts and shares of the draws; empty for
        one --data."""
        return self.frames.summary() if isinstance(self.frames, MixedFrames) else []

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


def open_training_data(
    path: Path | str,
    spec: Path | str | None = None,
    extra: Sequence[str] = (),
    weight: float = 1.0,
) -> TrainingData:
    """The --data folder as training data (see the module docstring for which path); `spec`
    is a dataset.yaml kept outside the folder (--spec). `extra` are further sources as
    ``PATH:WEIGHT`` (`training.mixed`), mixed with `path` at `weight`."""
    if extra:
        return TrainingData(_open_mixed([(str(path), weight), *map(parse_source, extra)]))
    if _is_severstal(path):
        return TrainingData(SeverstalDataset(path))
    return TrainingData(open_labelled(path, spec))


def _is_severstal(path: Path | str) -> bool:
    try:
        found = detect_format(path)
    except (InvalidInput, FileNotFoundError):
        found = SEVERSTAL  # the Severstal reader names what is missing, as it always has
    return found == SEVERSTAL


def _open_mixed(sources: Sequence[tuple[str, float]]) -> MixedFrames:
    """Severstal-layout folders (path, weight) as one `MixedFrames`; TrainError naming the
    source that is another layout, or the two whose classes or frame sizes differ."""
    opened: list[SeverstalDataset] = []
    for path, _ in sources:
        if not _is_severstal(path):
            raise TrainError(
                f"--data {path} is not a Severstal-layout folder (train.csv + train_images/): "
                "mixing several --data takes Severstal-layout folders only; train on it alone"
            )
        opened.append(SeverstalDataset(path))
    first = opened[0]
    for other in opened[1:]:
        if (other.num_classes, other.shape) != (first.num_classes, first.shape):
            raise TrainError(
                f"--data {other.root} has {other.num_classes} classes on "
                f"{other.shape[1]}×{other.shape[0]} frames but --data {first.root} has "
                f"{first.num_classes} on {first.shape[1]}×{first.shape[0]}: mixed sources "
                "must share their classes and frame size"
            )
    if len(first) < 4:
        raise TrainError(
            f"{first.root} has {len(first)} images; the first --data gives the validation "
            "frames and needs at least 4: put the larger source first"
        )
    return MixedFrames(opened, [w for _, w in sources])
