"""The joint loss: right parts, right direction."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="training needs defectd[train] (torch)")

from defectd.training.losses import SegmentationLoss, soft_dice_loss  # noqa: E402
from defectd.training.model.model import ModelOutput  # noqa: E402


def test_perfect_logits_beat_wrong_ones() -> None:
    masks = torch.zeros(2, 4, 8, 8, dtype=torch.uint8)
    masks[0, 1, 2:6, 2:6] = 1
    good = ModelOutput(masks.float() * 20 - 10, torch.tensor([[-10.0, 10, -10, -10]] * 2))
    good.presence[1, 1] = -10.0
    bad = ModelOutput(-good.masks, -good.presence)
    loss = SegmentationLoss([1.0, 5.0, 1.0, 1.0])
    assert loss(good, masks).total.item() < 0.05 < loss(bad, masks).total.item()
    assert soft_dice_loss(good.masks, masks).item() < 0.05


def test_pos_weight_raises_the_cost_of_missed_pixels() -> None:
    masks = torch.zeros(2, 4, 8, 8, dtype=torch.uint8)
    masks[:, 0, :4] = 1
    missed = ModelOutput(torch.full((2, 4, 8, 8), -3.0), torch.zeros(2, 4))
    plain = SegmentationLoss([1.0] * 4)(missed, masks).bce
    weighted = SegmentationLoss([5.0, 1.0, 1.0, 1.0])(missed, masks).bce
    assert weighted > 2 * plain
