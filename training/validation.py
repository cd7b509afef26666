"""Validation after each epoch: loss and Kaggle Dice on full frames, as the daemon scores them.

For exclusive classes (softmax head) also the segmentation metrics (`engines.segmetrics`):
mIoU with and without background and IoU per class, of the argmax label maps (the network's
figure, as the papers count it; the Dice is after post-processing).
Frames padded to the stride (`IGNORE` in the masks) are cropped back before scoring.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader

from defectd.engines.datasets import to_label_map
from defectd.engines.postprocess import PostprocessConfig, postprocess, winning_class
from defectd.engines.scoring import mask_dice
from defectd.engines.segmetrics import SegmentationMetrics
from defectd.training.losses import IGNORE, SegmentationLoss
from defectd.training.model.graph import TrainingGraph
from defectd.training.model.model import class_probabilities


@dataclass(frozen=True)
class Validation:
    """One validation pass: mean loss per frame and Kaggle Dice (mean and per class)."""

    loss: float
    dice: float
    dice_per_class: list[float]
    miou: float | None = None  # exclusive classes only, without background
    miou_with_background: float | None = None
    iou_per_class: list[float | None] = field(default_factory=list)


def validate(
    graph: TrainingGraph,
    loader: DataLoader[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: SegmentationLoss,
    device: torch.device,
    post: PostprocessConfig,
) -> Validation:
    """Validation loss and Kaggle Dice on full frames, post-processed with `post`; for a
    softmax head also mIoU and per-class IoU of the argmax (`engines.segmetrics`)."""
    graph.eval()
    num_classes = post.num_classes
    dice_sums = np.zeros(num_classes)
    loss_sum, frames = 0.0, 0
    metrics = SegmentationMetrics(num_classes, exclusive=True) if post.exclusive else None
    with torch.inference_mode():
        for images, masks in loader:
            images, masks = images.to(device), masks.to(device)
            output = graph(images)
            loss_sum += loss_fn(output, masks).total.item() * len(images)
            probs = class_probabilities(output.masks, post.head).float().cpu().numpy()
            presence = output.presence.sigmoid().float().cpu().numpy()
            truth = masks.cpu().numpy()
            for index in range(len(images)):
                valid = truth[index, 0] != IGNORE
                height, width = int(valid.any(axis=1).sum()), int(valid.any(axis=0).sum())
                real = truth[index][:, :height, :width]
                kept = postprocess(probs[index][:, :height, :width], presence[index], post).masks
                for c in range(num_classes):
                    dice_sums[c] += mask_dice(real[c], kept[c])
                if metrics is not None:
                    # The network's own figure, as segmentation papers count mIoU: each pixel
                    # to its argmax class, before the presence gate and thresholds.
                    argmax = winning_class(probs[index][:, :height, :width]).astype(np.uint8)
                    metrics.add(to_label_map(real), argmax)
            frames += len(images)
    per_class = (dice_sums / max(frames, 1)).tolist()
    result = Validation(loss_sum / max(frames, 1), float(np.mean(per_class)), per_class)
    if metrics is None or metrics.images == 0:
        return result
    report = metrics.report()
    return Validation(
        result.loss,
        result.dice,
        result.dice_per_class,
        miou=report.miou_without_background,
        miou_with_background=report.miou_with_background,
        iou_per_class=[m.iou for m in report.classes],
    )
