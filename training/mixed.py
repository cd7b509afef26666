"""Several Severstal-layout folders trained on as one (``defectd train --data A --data B:W``).

The use case is fine-tuning on many synthetic frames plus a few real ones: each source gets
a fixed share of the training draws (its weight over the sum of the weights), whatever its
size, and only the first source gives validation frames, so frames of the others kept aside
for scoring are never validated on or picked from.

`MixedFrames` is a `SeverstalDataset` over the sources, so everything that reads one
(`FrameDataset`, `positive_weights`, `grey_statistics`) reads the mix unchanged. Image ids
of source k > 0 are prefixed ``"{k}:"`` so they cannot collide; the first source keeps its
own ids, and split.json's validation ids stay the names in its folder.

No torch here: the command line parses ``PATH:WEIGHT`` with `parse_source` before it checks
that torch is installed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from defectd.engines.labels import LabelTable
from defectd.engines.severstal import SeverstalDataset


def parse_source(text: str) -> tuple[str, float]:
    """(path, weight) of a ``--data`` value ``PATH`` or ``PATH:WEIGHT`` (weight 1 when
    absent). Only the last colon can start a weight, and only when what follows it reads as
    a number, so a path with colons stays a path. ValueError naming the fix for a weight
    that is not a positive finite number, or for a weight without a path."""
    path, colon, tail = text.rpartition(":")
    if not colon:
        return text, 1.0
    try:
        weight = float(tail)
    except ValueError:
        return text, 1.0  # the colon is part of the path
    if not path:
        raise ValueError(f"{text!r} has a weight but no path: write PATH:WEIGHT, e.g. data:0.25")
    if not (math.isfinite(weight) and weight > 0):
        raise ValueError(
            f"{text!r}: the weight after the last ':' must be a positive number, e.g. "
            f"{path}:0.25 (or no weight, which is 1)"
        )
    return path, weight


def format_source(path: str, weight: float) -> str:
    """The ``PATH:WEIGHT`` text `parse_source` reads back as (path, weight)."""
    return f"{path}:{weight}"


@dataclass(frozen=True)
class Source:
    """One source of a mix as the trainer reports it."""

    path: str
    images: int
    share: float  # of the training draws: weight / sum of the weights


def mix_weights(
    inner: Sequence[float], sources: Sequence[int], weights: Sequence[float]
) -> list[float]:
    """Per-image draw weights: image i keeps `inner[i]` relative to the other images of its
    source `sources[i]`, and the images of source k together get `weights[k]` / Σ weights of
    the draws (sources without images in the list drop out of the sum).

    `inner` is typically the class-balanced `sampling_weights` of each source on its own.
    """
    totals: dict[int, float] = {}
    for weight, source in zip(inner, sources, strict=True):
        totals[source] = totals.get(source, 0.0) + weight
    present = sum(weights[k] for k in totals)
    return [
        weight / totals[source] * weights[source] / present if totals[source] > 0 else 0.0
        for weight, source in zip(inner, sources, strict=True)
    ]


class MixedFrames(SeverstalDataset):
    """Severstal-layout `sources` as one data set, with their draw `weights`.

    The sources must share their classes and frame size (`open_training_data` checks and
    names them). The base class's ``__init__`` reads one folder; here the folders are read
    already, so it is not called: the label tables are merged under the mixed ids, and
    `load_image` reads from the source an id belongs to — every other call of the base
    class (`classes`, `load_masks`, `positive_weights`'s label runs) works on the merged
    table as it is.
    """

    def __init__(self, sources: Sequence[SeverstalDataset], weights: Sequence[float]) -> None:
        if len(sources) < 2 or len(weights) != len(sources):
            raise ValueError("MixedFrames takes two or more sources with one weight each")
        first = sources[0]
        self.root = first.root
        self.shape = first.shape
        self.num_classes = first.num_classes
        self.images_dir = first.images_dir
        self.sources = list(sources)
        self.weights = [float(w) for w in weights]
        self.labels = LabelTable(num_classes=first.num_classes, source=first.labels.source)
        self.image_ids = []
        self.missing_images = []
        self._where: dict[str, tuple[int, str]] = {}
        for index, source in enumerate(self.sources):
            prefix = f"{index}:" if index else ""
            for image_id in source.image_ids:
                mixed = prefix + image_id
                self._where[mixed] = (index, image_id)
                self.image_ids.append(mixed)
                if image_id in source.labels.masks:
                    self.labels.masks[mixed] = list(source.labels.masks[image_id])
            self.missing_images += [prefix + i for i in source.missing_images]

    def source_of(self, image_id: str) -> int:
        """The index of the source `image_id` (a mixed id) comes from; KeyError if none."""
        return self._where[image_id][0]

    def ids_of(self, source: int) -> list[str]:
        """The mixed ids of one source's images, in its order."""
        return [i for i in self.image_ids if self._where[i][0] == source]

    def load_image(self, image_id: str) -> npt.NDArray[np.uint8]:
        """The grey H×W image, read by the source it comes from."""
        index, own = self._where[image_id]
        return self.sources[index].load_image(own)

    def summary(self) -> list[Source]:
        """Each source's folder, image count and share of the training draws."""
        total = sum(self.weights)
        return [
            Source(str(source.root), len(source.image_ids), weight / total)
            for source, weight in zip(self.sources, self.weights, strict=True)
        ]
