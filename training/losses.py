"""Loss of the joint mask + presence model, chosen by the head.

- ``sigmoid`` (independent classes): BCE with per-class ``pos_weight`` + soft Dice on the
  sigmoid probabilities;
- ``softmax`` (exclusive classes): cross-entropy over background + classes, each defect class
  weighted by its ``pos_weight`` (the background by 1), so tiny defects (a magnetic-tile
  blowhole is 0.01% of the pixels) are not drowned by the background, + soft Dice on the
  softmax probabilities of the defect classes (the background is left out of the Dice: it
  is most of every frame and would drown the defects);

plus, for both, the BCE of the presence head against "the class has a pixel in this crop".

Masks come as N×C×H×W uint8 0/1; a pixel whose planes all hold `IGNORE` (the padding of an
image smaller than its crop, or of a validation frame brought up to the stride) counts
nowhere: not in the cross-entropy (``ignore_index``), the BCE, the Dice nor the presence.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from defectd.training.model.model import ModelOutput

IGNORE = 255  # mask value of a pixel that is no part of the image (padding)


@dataclass(frozen=True)
class LossParts:
    """The total loss and its parts (detached floats, for logs and curves).

    `bce` is the per-pixel classification term: BCE for a sigmoid head, cross-entropy for a
    softmax head.
    """

    total: Tensor
    bce: float
    dice: float
    presence: float


def soft_dice_loss(logits: Tensor, targets: Tensor, smooth: float = 1.0) -> Tensor:
    """1 − soft Dice per class over the whole batch, averaged over classes."""
    return soft_dice(logits.sigmoid().float(), targets.float(), smooth)


def soft_dice(probs: Tensor, targets: Tensor, smooth: float = 1.0) -> Tensor:
    """1 − soft Dice of N×C×H×W probabilities against 0/1 targets, mean over classes
    (ignored pixels must already be 0 in both)."""
    dims = (0, 2, 3)
    intersection = (probs * targets).sum(dims)
    union = probs.sum(dims) + targets.sum(dims)
    return (1.0 - (2.0 * intersection + smooth) / (union + smooth)).mean()


class SegmentationLoss(nn.Module):
    """Per-pixel term (BCE with per-class ``pos_weight``, or cross-entropy for ``softmax``)
    + ``dice_weight`` × soft Dice on the masks, plus ``presence_weight`` × BCE of the
    presence head against "class has a pixel in this crop"."""

    pos_weight: Tensor

    def __init__(
        self,
        pos_weight: list[float],
        dice_weight: float = 1.0,
        presence_weight: float = 0.5,
        head: str = "sigmoid",
    ) -> None:
        super().__init__()
        self.register_buffer("pos_weight", torch.tensor(pos_weight, dtype=torch.float32))
        self.dice_weight = dice_weight
        self.presence_weight = presence_weight
        self.head = head

    def forward(self, output: ModelOutput, masks: Tensor) -> LossParts:
        ignored = masks[:, :1] == IGNORE  # N×1×H×W
        if self.head == "softmax":
            return self._softmax(output, masks, ignored)
        if bool(ignored.any()):
            return self._sigmoid_padded(output, masks, ignored)
        targets = masks.float()
        logits = output.masks.float()
        bce = F.binary_cross_entropy_with_logits(
            logits, targets, pos_weight=self.pos_weight.view(1, -1, 1, 1)
        )
        dice = soft_dice_loss(logits, targets)
        present = targets.amax(dim=(2, 3))
        return self._parts(bce, dice, output.presence, present)

    def _sigmoid_padded(self, output: ModelOutput, masks: Tensor, ignored: Tensor) -> LossParts:
        valid = (~ignored).float()
        targets = masks.float() * valid
        logits = output.masks.float()
        per_pixel = F.binary_cross_entropy_with_logits(
            logits, targets, pos_weight=self.pos_weight.view(1, -1, 1, 1), reduction="none"
        )
        bce = (per_pixel * valid).sum() / (valid.sum() * logits.shape[1]).clamp(min=1.0)
        dice = soft_dice(logits.sigmoid() * valid, targets)
        return self._parts(bce, dice, output.presence, targets.amax(dim=(2, 3)))

    def _softmax(self, output: ModelOutput, masks: Tensor, ignored: Tensor) -> LossParts:
        valid = (~ignored).float()
        targets = masks.float() * valid  # N×C×H×W, ignored pixels 0
        logits = output.masks.float()  # N×(C+1)×H×W, background first
        class_ids = torch.arange(1, targets.shape[1] + 1, device=masks.device).view(1, -1, 1, 1)
        labels = (targets.long() * class_ids).sum(dim=1)  # exclusive: at most one plane is 1
        labels = labels.masked_fill(ignored[:, 0], IGNORE)
        weights = torch.cat([self.pos_weight.new_ones(1), self.pos_weight])
        cross_entropy = F.cross_entropy(logits, labels, weight=weights, ignore_index=IGNORE)
        probs = logits.softmax(dim=1)[:, 1:] * valid
        dice = soft_dice(probs, targets)
        return self._parts(cross_entropy, dice, output.presence, targets.amax(dim=(2, 3)))

    def _parts(self, pixel: Tensor, dice: Tensor, presence: Tensor, present: Tensor) -> LossParts:
        presence_loss = F.binary_cross_entropy_with_logits(presence.float(), present)
        total = pixel + self.dice_weight * dice + self.presence_weight * presence_loss
        return LossParts(
            total, float(pixel.detach()), float(dice.detach()), float(presence_loss.detach())
        )
