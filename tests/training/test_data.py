"""Training data: augmented crops, class-balancing weights, pos_weight, grey statistics."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="training needs defectd[train] (torch)")

from defectd.engines.severstal import SeverstalDataset  # noqa: E402
from defectd.training.augment import AugmentConfig  # noqa: E402
from defectd.training.data import (  # noqa: E402
    FrameDataset,
    grey_statistics,
    positive_weights,
    sampling_weights,
)


def test_crops_and_full_frames(tiny_data: Path) -> None:
    dataset = SeverstalDataset(tiny_data)
    crops = FrameDataset(dataset, dataset.image_ids, AugmentConfig(crop=(128, 256)))
    image, masks = crops[0]
    assert image.shape == (1, 128, 256) and image.dtype == torch.uint8
    assert masks.shape == (4, 128, 256) and int(masks.max()) <= 1
    full = FrameDataset(dataset, dataset.image_ids)
    image, masks = full[0]
    assert image.shape == (1, 256, 1600)
    assert torch.equal(masks, torch.from_numpy(dataset.load_masks(dataset.image_ids[0])))


def test_rare_classes_weigh_more() -> None:
    combos = [(), (), (), (), (), (), (3,), (3,), (3,), (2,), (2, 3)]
    weights = sampling_weights(combos, 4)
    assert weights[9] == weights[10] > weights[6] > weights[0]


def test_positive_weights_and_statistics(tiny_data: Path) -> None:
    dataset = SeverstalDataset(tiny_data)
    weights = positive_weights(dataset, dataset.image_ids)
    assert len(weights) == 4 and all(1.0 <= w <= 10.0 for w in weights)
    mean, std = grey_statistics(dataset, dataset.image_ids)
    assert 0.1 < mean < 0.9 and 0.01 < std < 0.5
    with pytest.raises(ValueError, match="no images"):
        grey_statistics(dataset, [])
