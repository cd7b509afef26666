"""Loss of the joint mask + presence model: BCE (per-class pos_weight), soft Dice, presence BCE."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from defectd.training.model.model import ModelOutput


@dataclass(frozen=True)
class LossParts:
    """The total loss and its parts (detached floats, for logs and curves)."""

    total: Tensor
    bce: float
    dice: float
    presence: float


def soft_dice_loss(logits: Tensor, targets: Tensor, smooth: float = 1.0) -> Tensor:
    """1 − soft Dice per class over the whole batch, averaged over classes."""
    probs = logits.sigmoid().float()
    targets = targets.float()
    dims = (0, 2, 3)
    intersection = (probs * targets).sum(dims)
    union = probs.sum(dims) + targets.sum(dims)
    return (1.0 - (2.0 * intersection + smooth) / (union + smooth)).mean()


class SegmentationLoss(nn.Module):
    """BCE with per-class ``pos_weight`` + ``dice_weight`` × soft Dice on the masks, plus
    ``presence_weight`` × BCE of the presence head against "class has a pixel in this crop"."""

    pos_weight: Tensor

    def __init__(
        self, pos_weight: list[float], dice_weight: float = 1.0, presence_weight: float = 0.5
    ) -> None:
        super().__init__()
        self.register_buffer("pos_weight", torch.tensor(pos_weight, dtype=torch.float32))
        self.dice_weight = dice_weight
        self.presence_weight = presence_weight

    def forward(self, output: ModelOutput, masks: Tensor) -> LossParts:
        targets = masks.float()
        logits = output.masks.float()
        bce = F.binary_cross_entropy_with_logits(
            logits, targets, pos_weight=self.pos_weight.view(1, -1, 1, 1)
        )
        dice = soft_dice_loss(logits, targets)
        present = targets.amax(dim=(2, 3))
        presence = F.binary_cross_entropy_with_logits(output.presence.float(), present)
        total = bce + self.dice_weight * dice + self.presence_weight * presence
        return LossParts(total, float(bce.detach()), float(dice.detach()), float(presence.detach()))
