"""Output heads: per-pixel class logits and image-level class presence logits.

Both return logits. Probabilities are made later (export graph, inference): a sigmoid per
class where defect classes can co-occur, or a softmax over background + classes where they
are exclusive (the segmentation head then has one more channel, the background).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SegmentationHead(nn.Module):
    """1×1 convolution to ``num_classes`` logits (background included for a softmax head),
    then bilinear upsampling to the input size."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, kernel_size=1)

    def forward(self, features: Tensor, like: Tensor) -> Tensor:
        """N×num_classes logits with the spatial size of ``like`` (the model's input)."""
        logits = self.conv(features)
        return F.interpolate(logits, size=like.shape[-2:], mode="bilinear", align_corners=False)


class PresenceHead(nn.Module):
    """Image-level class presence from the deepest encoder features.

    Global average and max pooling are concatenated (the max keeps a small defect visible
    in a mostly clean frame), then dropout and a linear layer give N×num_classes logits.
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(2 * in_channels, num_classes)

    def forward(self, features: Tensor) -> Tensor:
        """N×num_classes logits, one per class, independent of each other."""
        pooled = torch.cat([features.mean(dim=(2, 3)), features.amax(dim=(2, 3))], dim=1)
        out: Tensor = self.linear(self.dropout(pooled))
        return out
