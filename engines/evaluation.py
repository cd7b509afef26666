"""A model over a labelled data set in any format: segmentation metrics and label maps.

`evaluate_dataset` runs a `Predictor` over the images of an `engines.datasets.Dataset` at
their native sizes (tiled when they differ from the engine's input) and counts, with
`engines.segmetrics`:

- ``kept``: the post-processed masks, what `defectd run` would publish (thresholds, minimum
  areas and presence gates of the card);
- ``network`` (exclusive classes only): each pixel to its argmax class before any threshold,
  the figure segmentation papers report as mIoU.

`write_prediction` saves one prediction as an image beside its stem: a label map PNG (pixel =
class id, 0 background) for exclusive classes, else one 0/255 PNG per class found.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from defectd.engines.datasets import Dataset, to_label_map
from defectd.engines.errors import InvalidInput
from defectd.engines.inference import FrameResult, Predictor
from defectd.engines.postprocess import FrameDefects, winning_class
from defectd.engines.segmetrics import SegmentationMetrics, SegmentationReport

Progress = Callable[[int], None]


@dataclass(frozen=True)
class DatasetEvaluation:
    """What `evaluate_dataset` counted; `network` is None for independent classes."""

    kept: SegmentationReport
    network: SegmentationReport | None
    images: int


def check_classes(dataset: Dataset, model_classes: Sequence[str], exclusive_head: bool) -> None:
    """InvalidInput naming the mismatch when the model cannot be scored on `dataset`."""
    spec = dataset.spec
    if spec.num_classes != len(model_classes):
        raise InvalidInput(
            f"{dataset.root}: the data set has {spec.num_classes} classes "
            f"({', '.join(spec.names) or 'none'}), the model {len(model_classes)} "
            f"({', '.join(model_classes)}); evaluate a model trained on this kind of data"
        )
    if spec.exclusive != exclusive_head:
        kind = "exclusive (a softmax head)" if spec.exclusive else "independent (a sigmoid head)"
        raise InvalidInput(
            f"{dataset.root}: the data set's classes are {kind}, the model's are not; "
            "set `exclusive` in its dataset.yaml or use a model with the other head"
        )


def read_ids(path: Path, known: Sequence[str]) -> list[str]:
    """Image ids from a run's split.json (its ``val`` list) or a text file, one per line;
    InvalidInput naming the ids the data set does not hold."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("val"), list):
            raise InvalidInput(f"{path}: expected a split.json with a 'val' list of image ids")
        ids = [str(i) for i in data["val"]]
    else:
        ids = [line.strip() for line in text.splitlines() if line.strip()]
    if not ids:
        raise InvalidInput(f"{path}: no image ids")
    missing = sorted(set(ids) - set(known))
    if missing:
        named = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise InvalidInput(f"{path}: {len(missing)} id(s) not in the data set: {named}")
    return ids


def predictions(
    predictor: Predictor,
    dataset: Dataset,
    image_ids: Sequence[str],
    batch_size: int,
    progress: Progress | None = None,
    keep_probs: bool = False,
) -> Iterator[FrameResult]:
    """The predictor's results over `image_ids` of `dataset`, in order."""
    images = ((i, dataset.read_image(i)) for i in image_ids)
    return predictor.run_images(images, batch_size, progress, keep_probs)


def evaluate_dataset(
    predictor: Predictor,
    dataset: Dataset,
    image_ids: Sequence[str],
    batch_size: int = 4,
    progress: Progress | None = None,
    save_to: Path | None = None,
) -> DatasetEvaluation:
    """Score the predictor on `image_ids` (see the module docstring); with `save_to`, also
    write each prediction there (`write_prediction`)."""
    exclusive = dataset.spec.exclusive
    num_classes = dataset.spec.num_classes
    kept = SegmentationMetrics(num_classes, exclusive=exclusive)
    network = SegmentationMetrics(num_classes, exclusive=True) if exclusive else None
    for result in predictions(predictor, dataset, image_ids, batch_size, progress, exclusive):
        truth = dataset.read_masks(result.image_id, result.defects.shape)
        predicted = result.defects.masks
        if exclusive:
            kept.add(to_label_map(truth), to_label_map(predicted))
        else:
            kept.add(truth, predicted)
        if network is not None and result.probs is not None:
            network.add(to_label_map(truth), winning_class(result.probs).astype(np.uint8))
        if save_to is not None:
            write_prediction(save_to, result.image_id, result.defects, exclusive)
    return DatasetEvaluation(
        kept.report(), None if network is None else network.report(), kept.images
    )


def prediction_paths(
    out: Path, image_id: str, classes: Sequence[int], exclusive: bool
) -> list[Path]:
    """Where `write_prediction` puts the files of `image_id` (its stem, sub-folders kept)."""
    stem = out / Path(image_id).with_suffix("")
    if exclusive:
        return [stem.with_name(stem.name + ".png")]
    return [stem.with_name(f"{stem.name}_class{c}.png") for c in classes]


def write_prediction(out: Path, image_id: str, defects: FrameDefects, exclusive: bool) -> None:
    """Write one prediction under `out`: a label map PNG (exclusive classes) or a 0/255 PNG
    per class found (independent classes; none for a clean frame)."""
    masks = defects.masks
    if exclusive:
        images: list[npt.NDArray[np.uint8]] = [to_label_map(masks)]
    else:
        images = [masks[c - 1] * np.uint8(255) for c in defects.classes]
    for path, image in zip(
        prediction_paths(out, image_id, defects.classes, exclusive), images, strict=True
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), image):
            raise OSError(f"could not write {path}")
