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


def test_softmax_cross_entropy_weights_each_defect_class_by_its_pos_weight() -> None:
    """A missed pixel of a class weighted 10 costs more than one of a class weighted 1
    (the mean is over the weights, so 8·10·l / (8 + 80) against 8·l / (8 + 8))."""
    masks = torch.zeros(2, 2, 4, 4, dtype=torch.uint8)
    masks[0, 0, :2] = 1  # class 1 in image 0, class 2 in image 1, equal areas
    masks[1, 1, :2] = 1
    logits = torch.zeros(2, 3, 4, 4)
    logits[:, 0] = 5.0  # everything called background: both classes missed alike
    presence = torch.zeros(2, 2)
    loss = SegmentationLoss([10.0, 1.0], dice_weight=0.0, presence_weight=0.0, head="softmax")
    first = loss(ModelOutput(logits[:1], presence[:1]), masks[:1]).total.item()
    second = loss(ModelOutput(logits[1:], presence[1:]), masks[1:]).total.item()
    assert first == pytest.approx(
        second * (80 / 88) / (8 / 16), rel=1e-2
    )  # background pixels cost ~0.01 each
