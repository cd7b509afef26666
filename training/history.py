"""The per-epoch record of a run: one `EpochRow` per epoch, as metrics.csv and curves.png.

A run on exclusive classes also records the validation mIoU (with and without the
background) and the IoU per class (`engines.segmetrics`); its best epoch is the one with the
highest mIoU without background (`EpochRow.score`), a Severstal run's the highest Dice.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from defectd.training.validation import Validation


@dataclass
class EpochRow:
    """One line of metrics.csv."""

    epoch: int
    steps: int
    lr: float
    train_loss: float
    train_bce: float
    train_dice_loss: float
    train_presence_loss: float
    val_loss: float
    val_dice: float
    val_dice_per_class: list[float]
    seconds: float
    # Exclusive classes only (None / empty otherwise): segmentation metrics of validation.
    val_miou: float | None = None  # without background
    val_miou_with_background: float | None = None
    val_iou_per_class: list[float | None] = field(default_factory=list)

    @property
    def score(self) -> float:
        """What picks the best epoch: mIoU without background where there is one, else Dice."""
        return self.val_miou if self.val_miou is not None else self.val_dice

    def csv_row(self) -> dict[str, Any]:
        """The row for metrics.csv: the per-class Dice spread over val_dice_1, val_dice_2, …
        (and for exclusive classes mIoU and val_iou_1, …)."""
        spread = ("val_dice_per_class", "val_iou_per_class", "val_miou", "val_miou_with_background")
        row = {k: v for k, v in asdict(self).items() if k not in spread}
        for index, value in enumerate(self.val_dice_per_class, start=1):
            row[f"val_dice_{index}"] = value
        if self.val_miou is not None or self.val_iou_per_class:
            row["val_miou"] = self.val_miou
            row["val_miou_with_background"] = self.val_miou_with_background
            for index, iou in enumerate(self.val_iou_per_class, start=1):
                row[f"val_iou_{index}"] = iou
        return row


def epoch_row(
    epoch: int,
    steps: int,
    lr: float,
    losses: npt.NDArray[np.float64],
    val: Validation,
    seconds: float,
) -> EpochRow:
    """The row of an epoch from its mean training losses (total, BCE, Dice, presence) and
    its validation."""
    return EpochRow(
        epoch=epoch,
        steps=steps,
        lr=lr,
        train_loss=float(losses[0]),
        train_bce=float(losses[1]),
        train_dice_loss=float(losses[2]),
        train_presence_loss=float(losses[3]),
        val_loss=val.loss,
        val_dice=val.dice,
        val_dice_per_class=val.dice_per_class,
        seconds=seconds,
        val_miou=val.miou,
        val_miou_with_background=val.miou_with_background,
        val_iou_per_class=val.iou_per_class,
    )


def write_metrics(rows: list[EpochRow], path: Path) -> None:
    """metrics.csv from the history (rewritten whole, so a resumed run has one clean file)."""
    if not rows:
        return
    fields = list(rows[0].csv_row())
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(row.csv_row())


def plot_curves(rows: list[EpochRow], path: Path, title: str) -> None:
    """curves.png: losses on the left, validation Kaggle Dice (mean and per class) right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [r.epoch for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    left.plot(epochs, [r.train_loss for r in rows], "o-", label="train loss")
    left.plot(epochs, [r.val_loss for r in rows], "o-", label="validation loss")
    left.set_xlabel("epoch")
    left.set_ylabel("loss (BCE + Dice + presence)")
    left.grid(alpha=0.3)
    left.legend()
    right.plot(epochs, [r.val_dice for r in rows], "o-", color="black", lw=2, label="mean")
    colours = ["tab:red", "tab:green", "tab:blue", "tab:purple"]
    for index in range(len(rows[0].val_dice_per_class)):
        right.plot(
            epochs,
            [r.val_dice_per_class[index] for r in rows],
            ".--",
            color=colours[index % len(colours)],
            label=f"class {index + 1}",
        )
    right.set_xlabel("epoch")
    right.set_ylabel("validation Kaggle Dice (thresholds 0.5, untuned)")
    for axis in (left, right):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.grid(alpha=0.3)
    right.legend(loc="lower right")
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)
