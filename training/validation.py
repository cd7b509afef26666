"""Validation after each epoch: loss and Kaggle Dice on full frames, as the daemon scores them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from defectd.engines.postprocess import PostprocessConfig, postprocess
from defectd.engines.scoring import mask_dice
from defectd.training.losses import SegmentationLoss
from defectd.training.model.graph import TrainingGraph


@dataclass(frozen=True)
class Validation:
    """One validation pass: mean loss per frame and Kaggle Dice (mean and per class)."""

    loss: float
    dice: float
    dice_per_class: list[float]


def validate(
    graph: TrainingGraph,
    loader: DataLoader[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: SegmentationLoss,
    device: torch.device,
    post: PostprocessConfig,
) -> Validation:
    """Validation loss and Kaggle Dice on full frames, post-processed with `post`."""
    graph.eval()
    num_classes = post.num_classes
    dice_sums = np.zeros(num_classes)
    loss_sum, frames = 0.0, 0
    with torch.inference_mode():
        for images, masks in loader:
            images, masks = images.to(device), masks.to(device)
            output = graph(images)
            loss_sum += loss_fn(output, masks).total.item() * len(images)
            probs = output.masks.sigmoid().float().cpu().numpy()
            presence = output.presence.sigmoid().float().cpu().numpy()
            truth = masks.cpu().numpy()
            for index in range(len(images)):
                kept = postprocess(probs[index], presence[index], post).masks
                for c in range(num_classes):
                    dice_sums[c] += mask_dice(truth[index, c], kept[c])
            frames += len(images)
    per_class = (dice_sums / max(frames, 1)).tolist()
    return Validation(loss_sum / max(frames, 1), float(np.mean(per_class)), per_class)
